//! Real `mpcomm` processes for the process-level tests: a child process
//! whose output is read line by line as it comes, and a group (one group
//! manager and named peers) started the way a student starts them in
//! terminals.
//!
//! Every child lives in a [`Child`] guard that kills it on drop, and every
//! wait has a timeout, so a bug fails a test instead of hanging it.

#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mpcomm::control::{PeerCommand, Reply, request};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub const BIN: &str = env!("CARGO_BIN_EXE_mpcomm");

/// How long a process may take to print a line we wait for, or to exit
/// once it should.
pub const STARTUP: Duration = Duration::from_secs(20);

/// Awaits `f`, failing the test (not hanging it) after `limit`.
pub async fn within<F: Future>(limit: Duration, what: &str, f: F) -> F::Output {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// A fresh directory under the system's temp dir, removed on drop.
pub fn temp_dir(tag: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("mpcomm-test-{tag}-"))
        .tempdir()
        .expect("cannot create a temp dir")
}

/// Which output stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

/// A child process of the test. Its stdout and stderr are read line by line
/// as they come (so it never blocks on a full pipe), kept whole, and
/// forwarded to [`Child::line`]. Dropping it kills the process.
pub struct Child {
    pub label: String,
    child: tokio::process::Child,
    lines: mpsc::UnboundedReceiver<(Stream, String)>,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Child {
    pub fn spawn(label: &str, args: &[&str]) -> Child {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(args);
        Child::spawn_command(label, cmd)
    }

    pub fn spawn_command(label: &str, mut cmd: tokio::process::Command) -> Child {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start the mpcomm binary");
        let (tx, lines) = mpsc::unbounded_channel();
        let out = Arc::new(Mutex::new(String::new()));
        let err = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        if let Some(s) = child.stdout.take() {
            readers.push(tokio::spawn(pump(s, Stream::Out, out.clone(), tx.clone())));
        }
        if let Some(s) = child.stderr.take() {
            readers.push(tokio::spawn(pump(s, Stream::Err, err.clone(), tx)));
        }
        Child {
            label: label.to_string(),
            child,
            lines,
            out,
            err,
            readers,
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id().expect("the child has exited") as i32)
    }

    pub fn stdout(&self) -> String {
        self.out.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        self.err.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The first (not yet consumed) line on `stream` that starts with
    /// `prefix`, with the prefix removed; waits up to `limit`.
    pub async fn line_within(&mut self, stream: Stream, prefix: &str, limit: Duration) -> String {
        let wait = async {
            while let Some((s, line)) = self.lines.recv().await {
                if s == stream
                    && let Some(rest) = line.strip_prefix(prefix)
                {
                    return Some(rest.to_string());
                }
            }
            None
        };
        match tokio::time::timeout(limit, wait).await {
            Ok(Some(rest)) => rest,
            Ok(None) => panic!(
                "{} exited without printing {prefix:?}; stdout:\n{}\nstderr:\n{}",
                self.label,
                self.stdout(),
                self.stderr()
            ),
            Err(_) => panic!(
                "{} did not print {prefix:?} within {limit:?}; stdout:\n{}\nstderr:\n{}",
                self.label,
                self.stdout(),
                self.stderr()
            ),
        }
    }

    /// [`Child::line_within`] with the [`STARTUP`] limit.
    pub async fn line(&mut self, stream: Stream, prefix: &str) -> String {
        self.line_within(stream, prefix, STARTUP).await
    }

    /// Waits for the process to exit, then for its output to be read to
    /// the end.
    pub async fn wait(&mut self, limit: Duration) -> ExitStatus {
        let status = match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => panic!("cannot wait for {}: {e}", self.label),
            Err(_) => panic!(
                "{} did not exit within {limit:?}; stdout so far:\n{}\nstderr so far:\n{}",
                self.label,
                self.stdout(),
                self.stderr()
            ),
        };
        for r in self.readers.drain(..) {
            let _ = tokio::time::timeout(STARTUP, r).await;
        }
        status
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("cannot signal a child");
    }

    /// SIGKILL: no chance to clean up, like a crash or a power cut.
    pub fn kill(&mut self) {
        self.child.start_kill().expect("cannot kill a child");
    }

    pub fn assert_no_panic(&self) {
        let err = self.stderr();
        assert!(
            !err.contains("panicked"),
            "{} panicked; stderr:\n{err}",
            self.label
        );
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // A stopped process must be continued to die of anything but SIGKILL;
        // SIGKILL works on it either way.
        let _ = self.child.start_kill();
    }
}

/// Copies `stream` into `keep` and `tx`, line by line, until it ends.
async fn pump<R: tokio::io::AsyncRead + Unpin>(
    stream: R,
    which: Stream,
    keep: Arc<Mutex<String>>,
    tx: mpsc::UnboundedSender<(Stream, String)>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(mut k) = keep.lock() {
            k.push_str(&line);
            k.push('\n');
        }
        let _ = tx.send((which, line));
    }
}

/// One peer process of a [`Cluster`].
pub struct Peer {
    pub name: String,
    pub data: SocketAddr,
    pub control: SocketAddr,
    pub data_dir: PathBuf,
    pub proc: Child,
}

/// A group manager and its peers, each on ports the kernel picks, all
/// below one temporary directory.
pub struct Cluster {
    pub dir: TempDir,
    pub gm_addr: SocketAddr,
    pub gm: Child,
    pub peers: Vec<Peer>,
}

impl Cluster {
    /// Starts a group manager (with `gm_args` added) and one peer per
    /// `(name, region)`, and waits until each has announced itself.
    pub async fn start(tag: &str, gm_args: &[&str], members: &[(&str, &str)]) -> Cluster {
        let dir = temp_dir(tag);
        let mut args = vec!["group-manager", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(gm_args);
        let mut gm = Child::spawn("group manager", &args);
        let gm_addr: SocketAddr = gm
            .line(Stream::Out, "listening on ")
            .await
            .trim()
            .parse()
            .expect("the group manager printed a bad address");
        let mut cluster = Cluster {
            dir,
            gm_addr,
            gm,
            peers: Vec::new(),
        };
        for (name, region) in members {
            cluster.add_peer(name, region).await;
        }
        cluster
    }

    /// Starts one more peer and waits until it has registered.
    pub async fn add_peer(&mut self, name: &str, region: &str) -> &mut Peer {
        let data_dir = self.dir.path().join(format!("peer-{name}"));
        let data_dir_arg = data_dir.to_string_lossy().into_owned();
        let gm = self.gm_addr.to_string();
        let mut proc = Child::spawn(
            &format!("peer {name}"),
            &[
                "peer",
                "--group-manager",
                &gm,
                "--bind",
                "127.0.0.1:0",
                "--control",
                "127.0.0.1:0",
                "--name",
                name,
                "--region",
                region,
                "--data-dir",
                &data_dir_arg,
            ],
        );
        let prefix = format!("peer {name} registered: data udp ");
        let rest = proc.line(Stream::Out, &prefix).await;
        let (data, control) = rest
            .split_once(", control tcp ")
            .unwrap_or_else(|| panic!("unexpected peer line {rest:?}"));
        self.peers.push(Peer {
            name: name.to_string(),
            data: data.trim().parse().expect("bad data address"),
            control: control.trim().parse().expect("bad control address"),
            data_dir,
            proc,
        });
        self.peers.last_mut().expect("just pushed")
    }

    /// The peer called `name`.
    pub fn peer(&mut self, name: &str) -> &mut Peer {
        self.peers
            .iter_mut()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no peer {name}"))
    }

    /// The server's data directory.
    pub fn server_dir(&self) -> PathBuf {
        self.dir.path().join("server")
    }

    /// Starts `mpcomm server --json` for this group with `extra` arguments.
    pub fn server(&self, extra: &[&str]) -> Child {
        let gm = self.gm_addr.to_string();
        let data_dir = self.server_dir().to_string_lossy().into_owned();
        let mut args = vec![
            "server",
            "--group-manager",
            &gm,
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data_dir,
            "--json",
        ];
        args.extend_from_slice(extra);
        Child::spawn("server", &args)
    }
}

/// Asks a peer what it is doing: `(state, run)`.
pub async fn ping(control: SocketAddr) -> Result<(String, Option<u64>), String> {
    let reply: Reply = request(control, &PeerCommand::Ping, Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    Ok((reply.state.unwrap_or_default(), reply.run))
}

/// Waits until the peer at `control` is in a run other than `not`, and
/// returns the run id.
pub async fn wait_until_running(control: SocketAddr, not: Option<u64>) -> u64 {
    within(STARTUP, "a peer to start its run", async {
        loop {
            if let Ok((state, Some(run))) = ping(control).await
                && state == "running"
                && Some(run) != not
            {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// The lines of a file that exists (empty if it does not).
pub fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs `mpcomm check ARGS` and returns (exit code, stdout + stderr).
pub fn check(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(BIN)
        .arg("check")
        .args(args)
        .output()
        .expect("cannot run mpcomm check");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
