//! `mpcomm server`: the comparison server.
//!
//! It does what the original `comparisonServer.py` did — start a run on
//! every registered peer, collect their delivery logs, count the rounds in
//! which peers delivered different messages — and what it did not:
//!
//! * the members are whoever is registered with the group manager, not a
//!   constant N; ids are assigned in natural name order (`peer-2` before
//!   `peer-10`);
//! * every wait has a deadline, and a peer that dies, hangs or never reports
//!   makes the run fail *naming that peer* (a dead peer is noticed at once:
//!   the server keeps each peer's control connection open during the run,
//!   and a process that dies closes it);
//! * logs arrive over TCP as one JSON line per entry, of any length, written
//!   straight to disk (no fixed receive buffers that cut long logs);
//! * the logs are checked by the full checker (`mpcomm-check`), not just
//!   compared position by position — and the position count covers every
//!   position and every peer;
//! * each run is stored in its own directory: every log, and `summary.json`
//!   with the checker's findings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use mpcomm_check::{Findings, PeerLog, RunSpec};
use mpcomm_core::{KeyRing, MemberId, OrderKind};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::address::advertised_addr;
use super::stamp::{create_unique_dir, now_stamp};

use mpcomm::control::{
    self, ControlError, Framed, GmRequest, MemberSpec, PeerCommand, PeerInfo, Reply, ReportHeader,
    ReportMsg, StartRun,
};
use mpcomm::secure::Channel;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Log entries received.
    pub entries: u64,
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
    /// The checker's findings (present when every member reported a log).
    #[serde(flatten)]
    pub findings: Option<Findings>,
}

/// Progress of a run, for whoever shows it.
#[derive(Clone, Debug)]
pub enum ServerEvent {
    /// Peers registered so far, while waiting for enough of them.
    Waiting {
        /// Registered now.
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
    /// Binds the report listener and works out the address peers must use.
    pub async fn bind(opts: ServerOptions) -> anyhow::Result<Server> {
        let listener = TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("cannot listen on {}", opts.listen))?;
        let local = listener.local_addr()?;
        let report_to =
            advertised_addr(opts.advertise.as_deref(), local, &opts.group_manager).await?;
        std::fs::create_dir_all(&opts.data_dir)
            .with_context(|| format!("cannot create {}", opts.data_dir.display()))?;
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
        let reply: Reply = control::request_keyed(
            self.opts.group_manager.as_str(),
            &GmRequest::List,
            REQUEST_TIMEOUT,
            self.keys.as_ref(),
        )
        .await
        .with_context(|| {
            format!(
                "cannot list peers at the group manager {}",
                self.opts.group_manager
            )
        })?;
        let mut peers = reply.peers.unwrap_or_default();
        peers.sort_by(|a, b| natural_cmp(&a.name, &b.name));
        Ok(peers)
    }

    /// Waits until at least `n` peers are registered.
    pub async fn wait_for_peers(
        &self,
        n: usize,
        timeout: Duration,
        progress: &mut dyn FnMut(ServerEvent),
    ) -> anyhow::Result<Vec<PeerInfo>> {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let peers = self.peers().await?;
            progress(ServerEvent::Waiting {
                registered: peers.len(),
                expected: n,
            });
            if peers.len() >= n {
                return Ok(peers);
            }
            if tokio::time::Instant::now() >= until {
                let names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
                bail!(
                    "only {} of {n} peers registered within {timeout:?}: {names:?}",
                    peers.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs one experiment with every registered peer.
    pub async fn run(
        &mut self,
        params: &RunParams,
        progress: &mut dyn FnMut(ServerEvent),
    ) -> anyhow::Result<RunOutcome> {
        let peers = self.peers().await?;
        if peers.is_empty() {
            bail!(
                "no peers are registered with the group manager at {}",
                self.opts.group_manager
            );
        }
        self.runs += 1;
        let run = new_run_id()?;
        let run_dir = create_run_dir(&self.opts.data_dir, params.order)?;
        let deadline = params.deadline();
        let started = tokio::time::Instant::now();
        let until = started + deadline;
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
                stats: Default::default(),
            })
            .collect();
        let (tx, mut rx) = mpsc::channel::<Collected>(4 * n + 4);

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
                    break;
                }
            }
        }

        let mut error = start_error;
        let mut received = 0;
        if error.is_none() {
            loop {
                tokio::select! {
                    accepted = self.listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            tokio::spawn(receive_report(stream, self.keys.clone(), run, n, run_dir.clone(), tx.clone()));
                        }
                    }
                    msg = rx.recv() => match msg {
                        Some(Collected::Report { header }) => {
                            let o = &mut outcomes[usize::from(header.member)];
                            if o.status != "missing" {
                                continue; // a duplicate report; the first one counts
                            }
                            o.status = header.status.clone();
                            o.error = header.error.clone();
                            o.entries = header.entries;
                            o.stats = header.stats.clone();
                            received += 1;
                            progress(ServerEvent::Reported { member: header.member, status: header.status, received, total: n });
                            if received == n {
                                break;
                            }
                        }
                        Some(Collected::Disconnected { member, why }) => {
                            let o = &outcomes[usize::from(member)];
                            if o.status == "missing" {
                                error = Some(format!(
                                    "peer {} ({}) disconnected during the run ({why}): its process probably died",
                                    member, o.name
                                ));
                                break;
                            }
                        }
                        None => break,
                    },
                    () = tokio::time::sleep_until(until) => {
                        let missing: Vec<String> = outcomes
                            .iter()
                            .filter(|o| o.status == "missing")
                            .map(|o| format!("{} ({})", o.id, o.name))
                            .collect();
                        error = Some(format!("run deadline of {deadline:?} passed; no report from peer(s) {}", missing.join(", ")));
                        break;
                    }
                }
            }
        }
        for w in watchers {
            w.abort();
        }
        let failed: Vec<String> = outcomes
            .iter()
            .filter(|o| o.status == "failed")
            .map(|o| {
                format!(
                    "peer {} ({}) failed: {}",
                    o.id,
                    o.name,
                    o.error.as_deref().unwrap_or("no reason given")
                )
            })
            .collect();
        if error.is_none() && !failed.is_empty() {
            error = Some(failed.join("; "));
        }
        let findings = if received == n {
            progress(ServerEvent::Checking);
            let spec = RunSpec {
                order: params.order,
                members: n,
                sent: vec![params.messages; n],
            };
            match read_logs(&run_dir, &outcomes) {
                Ok(logs) => Some(mpcomm_check::check(&spec, &logs)),
                Err(e) => {
                    error.get_or_insert(format!("{e:#}"));
                    None
                }
            }
        } else {
            None
        };
        let passed = error.is_none() && findings.as_ref().is_some_and(|f| f.passed);
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
            findings,
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
    pub async fn stop_everything(&self) -> anyhow::Result<()> {
        for p in self.peers().await.unwrap_or_default() {
            if let Err(e) = control::request_keyed::<_, _, Reply>(
                p.control_addr,
                &PeerCommand::Stop,
                REQUEST_TIMEOUT,
                self.keys.as_ref(),
            )
            .await
            {
                tracing::warn!("could not stop peer {}: {e}", p.name);
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
        Ok(())
    }
}

/// Compares names as people do: runs of digits by their value, so that
/// `peer-2` comes before `peer-10` and a demo of 12 peers numbers its
/// members in the order of their names. Equal by that rule (`peer-02` and
/// `peer-2`), names fall back to byte order, so the order is total.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> impl Iterator<Item = &str> {
        let mut rest = s;
        std::iter::from_fn(move || {
            let first = rest.chars().next()?;
            let digit = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digit)
                .unwrap_or(rest.len());
            let (chunk, tail) = rest.split_at(end);
            rest = tail;
            Some(chunk)
        })
    }
    let chunk_cmp = |x: &str, y: &str| {
        let digits = |c: &str| c.bytes().all(|b| b.is_ascii_digit());
        if digits(x) && digits(y) {
            let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        } else {
            x.cmp(y)
        }
    };
    let (mut xs, mut ys) = (chunks(a), chunks(b));
    let by_value = loop {
        match (xs.next(), ys.next()) {
            (Some(x), Some(y)) => match chunk_cmp(x, y) {
                std::cmp::Ordering::Equal => continue,
                other => break other,
            },
            (x, y) => break x.is_some().cmp(&y.is_some()),
        }
    };
    by_value.then_with(|| a.cmp(b))
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

enum Collected {
    Report { header: ReportHeader },
    Disconnected { member: MemberId, why: String },
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

/// Receives one report and writes its log durably into the run directory.
async fn receive_report(
    stream: TcpStream,
    keys: Option<KeyRing>,
    run: u64,
    n: usize,
    dir: PathBuf,
    tx: mpsc::Sender<Collected>,
) {
    // With a key, the sender proves it holds it before anything is read
    // (within the handshake's own timeout).
    let mut framed = match control::accept(stream, keys.as_ref()).await {
        Ok(framed) => framed,
        Err(e) => {
            tracing::warn!("refused a report connection: {e}");
            return;
        }
    };
    let result = tokio::time::timeout(Duration::from_secs(300), async {
        let header = match framed.recv::<ReportMsg>().await? {
            Some(ReportMsg::Report(h)) => h,
            Some(ReportMsg::End { .. }) => {
                return Err(ControlError::Protocol(
                    "a report must start with its header".into(),
                ));
            }
            None => return Err(ControlError::Closed),
        };
        if header.run != run {
            return Err(ControlError::Protocol(format!(
                "run {} is not the current run ({run})",
                header.run
            )));
        }
        if usize::from(header.member) >= n {
            return Err(ControlError::Protocol(format!(
                "member {} is not in this run of {n}",
                header.member
            )));
        }
        let suffix = if header.status == "completed" {
            "jsonl"
        } else {
            "failed.jsonl"
        };
        let name = format!("member-{}.{suffix}", header.member);
        let tmp = dir.join(format!("{name}.tmp"));
        let file = tokio::fs::File::create(&tmp).await?;
        let mut writer = tokio::io::BufWriter::with_capacity(1 << 16, file);
        control::recv_report_body(&mut framed, &header, &mut writer).await?;
        writer.flush().await?;
        let file = writer.into_inner();
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&tmp, dir.join(&name)).await?;
        Ok(header)
    })
    .await;
    match result {
        Ok(Ok(header)) => {
            let _ = framed.send(&Reply::ok()).await;
            let _ = tx.send(Collected::Report { header }).await;
        }
        Ok(Err(e)) => {
            tracing::warn!("rejected a report: {e}");
            let _ = framed.send(&Reply::err(e.to_string())).await;
        }
        Err(_) => tracing::warn!("a report took too long"),
    }
}

/// Reads every member's log from the run directory.
fn read_logs(dir: &Path, members: &[MemberOutcome]) -> anyhow::Result<Vec<PeerLog>> {
    members
        .iter()
        .map(|m| {
            let suffix = if m.status == "completed" {
                "jsonl"
            } else {
                "failed.jsonl"
            };
            let path = dir.join(format!("member-{}.{suffix}", m.id));
            if m.entries == 0 {
                return Ok(PeerLog {
                    peer: m.id,
                    entries: Vec::new(),
                });
            }
            let file = std::fs::File::open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let log = mpcomm_check::log::read_log(
                std::io::BufReader::new(file),
                &path.display().to_string(),
            )?;
            Ok(log)
        })
        .collect()
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
    use super::natural_cmp;

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

    #[test]
    fn names_sort_naturally() {
        let mut names = vec![
            "peer-10", "peer-2", "peer-1", "peer-02", "b", "a10b", "a9b", "peer-", "",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "", "a9b", "a10b", "b", "peer-", "peer-1", "peer-02", "peer-2", "peer-10"
            ]
        );
    }
}
