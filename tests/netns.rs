//! A multi-host run: the real `mpcomm` binary on separate (virtual) hosts.
//!
//! The loopback tests (`tests/system.rs`) run every process on 127.0.0.1,
//! where every address is the same and nothing can go wrong with *which*
//! address a process tells the others. Real deployments differ: each host
//! has its own IP, peers bind `0.0.0.0` and must advertise the address the
//! others can reach. This test builds such a network with Linux network
//! namespaces, each one a little host with its own interfaces:
//!
//! ```text
//!   mpc<tag>-h0  eth0 10.231.k.1  group manager + server
//!   mpc<tag>-h1  eth0 10.231.k.2  peer host-1 (region r0)
//!   mpc<tag>-h2  eth0 10.231.k.3  peer host-2 (region r0)
//!   mpc<tag>-h3  eth0 10.231.k.4  peer host-3 (region r1)
//!        |  (one veth pair per host; the other end, h<i>, is a port of ...)
//!   mpc<tag>-br  bridge br0       ... a switch living in its own namespace
//! ```
//!
//! The veth pairs are created inside the bridge namespace with their host
//! end moved straight into the host namespace, so no interface ever appears
//! in the machine's own namespace (no name clash with the host's own
//! interfaces, nothing to leak there). `<tag>` and `k` come from the test
//! process id, so two test runs at the same time do not share names.
//!
//! It needs root and iproute2's `ip netns`. Without them (a developer's
//! laptop, an unprivileged container) the test prints
//! `SKIPPED: multi-host test needs root and ip netns (reason)` and passes
//! (unless `MPCOMM_NO_SKIP` is set, as `.ci/run` does: then it fails); once
//! the namespaces can be made, any failure is a real failure.
//!
//! Every child process and every namespace lives in a [`Cluster`] guard
//! that kills and deletes them on drop, also when an assertion panics; every
//! wait has a timeout, so a bug fails the test instead of hanging it.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The group key file every process of the test is given.
static KEY_FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

const BIN: &str = env!("CARGO_BIN_EXE_mpcomm");

/// Number of peer hosts (h1..=PEERS); h0 runs the group manager and server.
const PEERS: usize = 3;
/// How long a process may take to print its readiness line.
const STARTUP: Duration = Duration::from_secs(15);
/// How long one `ip` command may take.
const IP_LIMIT: Duration = Duration::from_secs(10);
/// The server is killed after this long: far above the ~5 s a run needs and
/// above its own `--deadline`, so only a hang trips it.
const SERVER_LIMIT: Duration = Duration::from_secs(90);
/// How long the peers and the group manager may take to exit once the
/// server told them to stop (`--stop-when-done`).
const EXIT_LIMIT: Duration = Duration::from_secs(15);

const GM_PORT: u16 = 7100;
const SERVER_PORT: u16 = 7200;
const DATA_PORT: u16 = 7000;
const CONTROL_PORT: u16 = 7001;

// ---------------------------------------------------------------------------
// Running commands with a time limit
// ---------------------------------------------------------------------------

/// Waits for `child` at most `limit`; `None` if it is still running.
fn wait_timeout(child: &mut Child, limit: Duration) -> std::io::Result<Option<ExitStatus>> {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= end {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `ip ARGS`, returning its stderr as the error when it fails (or does
/// not finish within [`IP_LIMIT`]).
fn ip(args: &[&str]) -> Result<(), String> {
    let what = format!("ip {}", args.join(" "));
    let mut child = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: cannot run: {e}"))?;
    // `ip` writes little; reading stderr after the exit cannot deadlock.
    let status = match wait_timeout(&mut child, IP_LIMIT) {
        Ok(Some(s)) => s,
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what}: no answer within {IP_LIMIT:?}"));
        }
        Err(e) => return Err(format!("{what}: {e}")),
    };
    let mut err = String::new();
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what}: {status}: {}", err.trim()))
    }
}

/// Runs `ip ARGS`, failing the test if it fails: used once the namespaces
/// exist, when a failure is a real problem rather than a missing privilege.
fn ip_ok(args: &[&str]) {
    if let Err(e) = ip(args) {
        panic!("network setup failed: {e}");
    }
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

/// A child process with its stdout lines arriving on a channel (so they can
/// be awaited with a timeout) and its stderr kept for error messages.
struct Proc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    /// Starts `mpcomm ARGS` inside namespace `ns`. `ip netns exec` execs the
    /// command, so the child's pid is mpcomm's own and killing it kills
    /// mpcomm.
    fn spawn(name: &str, ns: &str, args: &[&str]) -> Proc {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, BIN])
            .args(args)
            .env("RUST_LOG", "warn")
            // Every process binds a non-loopback address, so each needs the
            // group key (see `KEY_FILE`).
            .envs(KEY_FILE.get().map(|k| ("MPCOMM_KEY_FILE", k)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let (tx, lines) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(err) = child.stderr.take() {
            let buf = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(mut b) = buf.lock() {
                        b.push_str(&line);
                        b.push('\n');
                    }
                }
            });
        }
        Proc {
            name: name.to_string(),
            child,
            lines,
            stderr,
        }
    }

    /// The next stdout line, failing the test after `limit`.
    fn line(&self, limit: Duration, what: &str) -> String {
        match self.lines.recv_timeout(limit) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!(
                "{}: no {what} within {limit:?}; stderr:\n{}",
                self.name,
                self.stderr_text()
            ),
            Err(RecvTimeoutError::Disconnected) => {
                // Give the stderr reader a moment to catch the last words.
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "{}: exited before printing {what}; stderr:\n{}",
                    self.name,
                    self.stderr_text()
                )
            }
        }
    }

    fn stderr_text(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------
// The cluster guard
// ---------------------------------------------------------------------------

/// The namespaces and processes of one test run; dropping it kills every
/// process and deletes every namespace, in that order (a namespace with a
/// live process in it would survive the deletion of its name).
struct Cluster {
    tag: String,
    subnet: u8,
    namespaces: Vec<String>,
    procs: Vec<Proc>,
    dir: PathBuf,
}

impl Cluster {
    fn bridge_ns(&self) -> String {
        format!("mpc{}-br", self.tag)
    }

    fn host_ns(&self, i: usize) -> String {
        format!("mpc{}-h{i}", self.tag)
    }

    /// The IP of host `i` (h0 is .1).
    fn host_ip(&self, i: usize) -> String {
        format!("10.231.{}.{}", self.subnet, i + 1)
    }

    fn all_names(&self) -> Vec<String> {
        let mut names: Vec<String> = (0..=PEERS).map(|i| self.host_ns(i)).collect();
        names.push(self.bridge_ns());
        names
    }

    /// Adds a namespace with its loopback up, remembering it for cleanup.
    fn add_ns(&mut self, name: &str) -> Result<(), String> {
        ip(&["netns", "add", name])?;
        self.namespaces.push(name.to_string());
        ip(&["-n", name, "link", "set", "lo", "up"])
    }

    /// Builds the topology. `Err` means "cannot make namespaces here" (the
    /// test is skipped); failures after that point panic.
    fn setup(&mut self) -> Result<(), String> {
        // Leftovers of an interrupted run with the same pid (names are
        // derived from it): remove them so `netns add` does not fail.
        for name in self.all_names() {
            let _ = ip(&["netns", "del", &name]);
        }
        let br = self.bridge_ns();
        self.add_ns(&br)?;
        // Some containers allow creating a namespace but not entering it.
        let probe = Command::new("ip")
            .args(["netns", "exec", &br, "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run ip netns exec: {e}"));
        let mut probe = probe?;
        match wait_timeout(&mut probe, IP_LIMIT) {
            Ok(Some(s)) if s.success() => {}
            Ok(Some(s)) => return Err(format!("ip netns exec {br} true: {s}")),
            Ok(None) => {
                let _ = probe.kill();
                let _ = probe.wait();
                return Err(format!("ip netns exec {br} true: no answer"));
            }
            Err(e) => return Err(format!("ip netns exec: {e}")),
        }
        ip_ok(&["-n", &br, "link", "add", "br0", "type", "bridge"]);
        ip_ok(&["-n", &br, "link", "set", "br0", "up"]);
        for i in 0..=PEERS {
            let host = self.host_ns(i);
            if let Err(e) = self.add_ns(&host) {
                panic!("network setup failed: {e}");
            }
            let port = format!("h{i}");
            // Both ends are born where they belong: `port` in the bridge
            // namespace, `eth0` in the host's.
            ip_ok(&[
                "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &host,
            ]);
            ip_ok(&["-n", &br, "link", "set", &port, "master", "br0"]);
            ip_ok(&["-n", &br, "link", "set", &port, "up"]);
            let cidr = format!("{}/24", self.host_ip(i));
            ip_ok(&["-n", &host, "addr", "add", &cidr, "dev", "eth0"]);
            ip_ok(&["-n", &host, "link", "set", "eth0", "up"]);
        }
        Ok(())
    }

    fn spawn(&mut self, name: &str, host: usize, args: &[&str]) -> usize {
        let ns = self.host_ns(host);
        self.procs.push(Proc::spawn(name, &ns, args));
        self.procs.len() - 1
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in &mut self.procs {
            if let Ok(None) = p.child.try_wait() {
                let _ = p.child.kill();
                let _ = wait_timeout(&mut p.child, Duration::from_secs(5));
            }
        }
        // Hosts first, the bridge last (deleting it also deletes the
        // veth ends still in it).
        for name in self.namespaces.iter().rev() {
            if let Err(e) = ip(&["netns", "del", name]) {
                eprintln!("cleanup: {e}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------
// Privilege check
// ---------------------------------------------------------------------------

/// The effective uid, from /proc/self/status (`Uid: real effective ...`).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn skip(reason: &str) {
    // CI sets MPCOMM_NO_SKIP: there, a missing prerequisite is a failure,
    // so a broken install cannot pass as a skipped test.
    if std::env::var_os("MPCOMM_NO_SKIP").is_some() {
        panic!("multi-host test cannot run ({reason}) and MPCOMM_NO_SKIP is set");
    }
    eprintln!("SKIPPED: multi-host test needs root and ip netns ({reason})");
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

fn member_logs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read run directory {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("member-") && n.ends_with(".jsonl"))
        .collect();
    names.sort();
    names
}

#[test]
fn total_order_across_network_namespaces() {
    match effective_uid() {
        Some(0) => {}
        Some(uid) => return skip(&format!("running as uid {uid}")),
        None => return skip("cannot read the uid from /proc/self/status"),
    }
    if let Err(e) = ip(&["-V"]) {
        return skip(&e);
    }

    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("mpcomm-netns-test-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    // The hosts' addresses are not loopback: every process needs the group
    // key, and uses it (sealed datagrams, authenticated control).
    let key = dir.join("group.key");
    let ring = mpcomm_core::KeyRing::single(mpcomm::keyfile::generate(1).expect("random key"));
    mpcomm::keyfile::save(&key, &ring, true).expect("cannot write the key");
    let _ = KEY_FILE.set(key);
    let mut cluster = Cluster {
        // 4 hex digits: "mpcffff-br" and friends stay short and readable.
        tag: format!("{:04x}", pid & 0xffff),
        subnet: u8::try_from(pid % 250).unwrap_or(0) + 1,
        namespaces: Vec::new(),
        procs: Vec::new(),
        dir: dir.clone(),
    };
    if let Err(e) = cluster.setup() {
        return skip(&e);
    }

    let gm_addr = format!("{}:{GM_PORT}", cluster.host_ip(0));
    let gm = cluster.spawn("group manager", 0, &["group-manager", "--listen", &gm_addr]);
    let line = cluster.procs[gm].line(STARTUP, "listening line");
    assert_eq!(line, format!("listening on {gm_addr}"));

    let mut peers = Vec::new();
    for i in 1..=PEERS {
        let name = format!("host-{i}");
        let ip_addr = cluster.host_ip(i);
        let data_dir = dir.join(&name);
        let data_dir = data_dir.to_string_lossy().into_owned();
        let bind = format!("0.0.0.0:{DATA_PORT}");
        let control = format!("0.0.0.0:{CONTROL_PORT}");
        let advertise = format!("{ip_addr}:{DATA_PORT}");
        // Two regions so that the emulated WAN has distant members.
        let region = if i < PEERS { "r0" } else { "r1" };
        let p = cluster.spawn(
            &name,
            i,
            &[
                "peer",
                "--group-manager",
                &gm_addr,
                "--bind",
                &bind,
                "--advertise",
                &advertise,
                "--control",
                &control,
                "--name",
                &name,
                "--region",
                region,
                "--data-dir",
                &data_dir,
            ],
        );
        // `--advertise` gives the host of both addresses (the control port
        // is the bound one): the others must see the namespace's IP, never
        // 0.0.0.0.
        let line = cluster.procs[p].line(STARTUP, "registration line");
        assert_eq!(
            line,
            format!(
                "peer {name} registered: data udp {ip_addr}:{DATA_PORT}, \
                 control tcp {ip_addr}:{CONTROL_PORT}"
            )
        );
        peers.push(p);
    }

    let server_listen = format!("{}:{SERVER_PORT}", cluster.host_ip(0));
    let runs_dir = dir.join("runs").to_string_lossy().into_owned();
    let expect = PEERS.to_string();
    let server = cluster.spawn(
        "server",
        0,
        &[
            "server",
            "--group-manager",
            &gm_addr,
            "--listen",
            &server_listen,
            "--messages",
            "40",
            "--order",
            "total",
            "--expect",
            &expect,
            "--expect-timeout",
            "20s",
            "--wan",
            "intra=1ms±1ms, inter=20ms±10ms, loss=1%",
            "--deadline",
            "60s",
            "--data-dir",
            &runs_dir,
            "--json",
            "--stop-when-done",
        ],
    );
    let status = match wait_timeout(&mut cluster.procs[server].child, SERVER_LIMIT) {
        Ok(Some(s)) => s,
        Ok(None) => panic!(
            "server still running after {SERVER_LIMIT:?}; stderr:\n{}",
            cluster.procs[server].stderr_text()
        ),
        Err(e) => panic!("cannot wait for the server: {e}"),
    };
    // The reader thread sends the JSON line as soon as it is read; after the
    // exit it can only be a short moment behind.
    let json = cluster.procs[server].line(STARTUP, "JSON summary");
    let stderr = cluster.procs[server].stderr_text();
    assert!(
        status.success(),
        "server exited with {status}; stdout: {json}\nstderr:\n{stderr}"
    );
    let summary: Value = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("server printed no JSON ({e}): {json}"));
    assert_eq!(summary["passed"], Value::Bool(true), "{summary:#}");
    for key in ["total_order", "agreement", "integrity", "fifo"] {
        assert_eq!(summary[key], Value::Bool(true), "{key}: {summary:#}");
    }
    let delivered = summary["delivered"].as_u64();
    assert!(delivered.is_some_and(|d| d > 0), "{summary:#}");
    assert_eq!(delivered, summary["expected"].as_u64(), "{summary:#}");
    assert_eq!(summary["peers"].as_u64(), Some(PEERS as u64), "{summary:#}");

    // One log per member, named after its member id, in the run directory.
    let members = summary["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), PEERS, "{summary:#}");
    let run_dir = summary["run_dir"]
        .as_str()
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no run_dir: {summary:#}"));
    let mut want: Vec<String> = members
        .iter()
        .map(|m| format!("member-{}.jsonl", m["id"]))
        .collect();
    want.sort();
    assert_eq!(member_logs(&run_dir), want, "{summary:#}");
    let mut regions: Vec<&str> = members
        .iter()
        .filter_map(|m| m["region"].as_str())
        .collect();
    regions.sort_unstable();
    regions.dedup();
    assert_eq!(regions, ["r0", "r1"], "{summary:#}");

    // `--stop-when-done` reached every host: all of them exit by themselves.
    for &p in peers.iter().chain([&gm]) {
        let proc = &mut cluster.procs[p];
        match wait_timeout(&mut proc.child, EXIT_LIMIT) {
            Ok(Some(s)) => assert!(
                s.success(),
                "{} exited with {s}; stderr:\n{}",
                proc.name,
                proc.stderr_text()
            ),
            Ok(None) => panic!("{} did not stop within {EXIT_LIMIT:?}", proc.name),
            Err(e) => panic!("cannot wait for {}: {e}", proc.name),
        }
    }
    eprintln!(
        "multi-host run passed: {} peers in namespaces mpc{}-h1..h{PEERS}, {} deliveries in {:.1}s",
        PEERS,
        cluster.tag,
        delivered.unwrap_or(0),
        summary["duration_s"].as_f64().unwrap_or(0.0)
    );
}
