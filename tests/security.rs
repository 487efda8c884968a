//! Only members speak: the group key on real processes (loopback).
//!
//! Each attack ends with the run passing and the attack counted, in
//! `summary.json` and in the peer's log (stderr). The deterministic attacks
//! on the protocol itself — replays in the same and a later run, bit flips,
//! truncation, another key, key rotation, stamps of 2⁶⁴−1 — are in
//! `crates/mpcomm-core/tests/security.rs`; here are the ones that need real
//! sockets and processes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mpcomm::control::{GmRequest, PeerCommand, Reply, request, request_keyed};
use mpcomm_core::seal::{GroupKey, KeyRing, Sealer};
use mpcomm_core::wire::{self, Frame, Header, MAX_DATAGRAM, Record, RecordKind};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinHandle;

const BIN: &str = env!("CARGO_BIN_EXE_mpcomm");
const STARTUP: Duration = Duration::from_secs(20);

async fn within<F: Future>(limit: Duration, what: &str, f: F) -> F::Output {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// A child process whose output is collected; killed on drop.
struct Proc {
    label: String,
    child: tokio::process::Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Proc {
    fn spawn(label: &str, args: &[&str]) -> Proc {
        let mut child = tokio::process::Command::new(BIN)
            .args(args)
            .env_remove("MPCOMM_KEY_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start the mpcomm binary");
        let out = Arc::new(Mutex::new(String::new()));
        let err = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        if let Some(s) = child.stdout.take() {
            readers.push(tokio::spawn(pump(s, out.clone())));
        }
        if let Some(s) = child.stderr.take() {
            readers.push(tokio::spawn(pump(s, err.clone())));
        }
        Proc {
            label: label.to_string(),
            child,
            out,
            err,
            readers,
        }
    }

    fn stdout(&self) -> String {
        self.out.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        self.err.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits until stdout has a line starting with `prefix`; returns the rest.
    async fn line(&self, prefix: &str) -> String {
        let what = format!("{} to print {prefix:?}", self.label);
        let found = within(STARTUP, &what, async {
            loop {
                if let Some(rest) = self.stdout().lines().find_map(|l| l.strip_prefix(prefix)) {
                    return rest.to_string();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        found.await
    }

    async fn wait(&mut self, limit: Duration) -> ExitStatus {
        let status = match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => panic!("cannot wait for {}: {e}", self.label),
            Err(_) => panic!(
                "{} did not exit within {limit:?}; stderr:\n{}",
                self.label,
                self.stderr()
            ),
        };
        for r in self.readers.drain(..) {
            let _ = tokio::time::timeout(STARTUP, r).await;
        }
        status
    }
}

async fn pump<R: tokio::io::AsyncRead + Unpin>(stream: R, keep: Arc<Mutex<String>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(mut k) = keep.lock() {
            k.push_str(&line);
            k.push('\n');
        }
    }
}

fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("mpcomm-security-test-{tag}-"))
        .tempdir()
        .expect("cannot create a temp dir")
}

/// `mpcomm keygen DIR/NAME`; returns the path.
async fn keygen(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let p = path.to_string_lossy().into_owned();
    let mut k = Proc::spawn("keygen", &["keygen", &p]);
    let status = k.wait(STARTUP).await;
    assert!(status.success(), "keygen failed: {}", k.stderr());
    path
}

struct Group {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    gm_addr: SocketAddr,
    _gm: Proc,
    /// Each peer with its data (UDP) and control (TCP) address.
    peers: Vec<(Proc, SocketAddr, SocketAddr)>,
    key: Option<String>,
}

impl Group {
    /// A group manager and `n` peers on loopback, all with `key` (if any).
    async fn start(tag: &str, n: usize, key: bool) -> Group {
        let tmp = temp_dir(tag);
        let dir = tmp.path().to_path_buf();
        let key = if key {
            Some(
                keygen(&dir, "group.key")
                    .await
                    .to_string_lossy()
                    .into_owned(),
            )
        } else {
            None
        };
        let with_key = |mut args: Vec<String>| {
            if let Some(k) = &key {
                args.push("--key".into());
                args.push(k.clone());
            }
            args
        };
        let gm_args = with_key(vec![
            "group-manager".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ]);
        let gm_args: Vec<&str> = gm_args.iter().map(String::as_str).collect();
        let gm = Proc::spawn("group manager", &gm_args);
        let gm_addr: SocketAddr = gm.line("listening on ").await.trim().parse().unwrap();
        let mut peers = Vec::new();
        for i in 0..n {
            let name = format!("p{i}");
            let data_dir = dir.join(&name).to_string_lossy().into_owned();
            let args = with_key(
                [
                    "peer",
                    "--group-manager",
                    &gm_addr.to_string(),
                    "--name",
                    &name,
                    "--data-dir",
                    &data_dir,
                ]
                .map(String::from)
                .to_vec(),
            );
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let p = Proc::spawn(&format!("peer {name}"), &args);
            let rest = p.line(&format!("peer {name} registered: data udp ")).await;
            let (data, control) = rest.split_once(", control tcp ").unwrap();
            peers.push((
                p,
                data.trim().parse().unwrap(),
                control.trim().parse().unwrap(),
            ));
        }
        Group {
            _dir: tmp,
            dir,
            gm_addr,
            _gm: gm,
            peers,
            key,
        }
    }

    fn server(&self, messages: u64) -> Proc {
        let data_dir = self.dir.join("runs").to_string_lossy().into_owned();
        let mut args: Vec<String> = [
            "server",
            "--group-manager",
            &self.gm_addr.to_string(),
            "--listen",
            "127.0.0.1:0",
            "--expect",
            &self.peers.len().to_string(),
            "--messages",
            &messages.to_string(),
            "--min-interval",
            "2ms",
            "--max-interval",
            "6ms",
            "--data-dir",
            &data_dir,
            "--json",
            "--stop-when-done",
        ]
        .map(String::from)
        .to_vec();
        if let Some(k) = &self.key {
            args.push("--key".into());
            args.push(k.clone());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Proc::spawn("server", &args)
    }
}

/// The server's summary.json, once it exited.
async fn summary(server: &mut Proc) -> Value {
    let status = server.wait(Duration::from_secs(90)).await;
    let out = server.stdout();
    let line = out
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON from the server ({status}): {}", server.stderr()));
    let json: Value = serde_json::from_str(line).unwrap();
    let dir = json["run_dir"].as_str().unwrap();
    let text = std::fs::read_to_string(Path::new(dir).join("summary.json")).unwrap();
    let s: Value = serde_json::from_str(&text).unwrap();
    assert!(
        status.success(),
        "server: {status}\n{s}\n{}",
        server.stderr()
    );
    assert_eq!(s["passed"], true, "{s}");
    assert_eq!(s["delivered"], s["expected"], "{s}");
    s
}

fn stat_sum(summary: &Value, counter: &str) -> u64 {
    summary["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["stats"][counter].as_u64().unwrap_or(0))
        .sum()
}

fn forged_data(run: u64, from: u16, to: u16, seq: u64) -> Vec<u8> {
    let h = Header {
        run_id: run,
        from,
        to,
        incarnation: 77,
        view: 1,
    };
    let rec = Record {
        sender: from,
        link_seq: seq,
        kind: RecordKind::Data { seq },
        stamp: u64::MAX,
        ext: bytes::Bytes::new(),
        payload: bytes::Bytes::from_static(b"forged!!"),
    };
    wire::encode(h, &[Frame::Record(rec)]).unwrap()
}

/// Sends forged datagrams to every peer, every few milliseconds, until
/// `stop`; returns how many went out.
async fn forge(
    targets: Vec<SocketAddr>,
    run: Arc<Mutex<u64>>,
    make: impl Fn(u64, u16, u64) -> Vec<Vec<u8>>,
    stop: Arc<tokio::sync::Notify>,
) -> u64 {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut sent = 0;
    for round in 0u64.. {
        let r = *run.lock().unwrap();
        for (to, addr) in targets.iter().enumerate() {
            for d in make(r, to as u16, round) {
                if sock.send_to(&d, addr).await.is_ok() {
                    sent += 1;
                }
            }
        }
        tokio::select! {
            () = stop.notified() => break,
            () = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygen_writes_a_private_key_never_overwrites_and_rotates() {
    let tmp = temp_dir("keygen");
    let path = keygen(tmp.path(), "k").await;
    let p = path.to_string_lossy().into_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let before = std::fs::read_to_string(&path).unwrap();
    let mut again = Proc::spawn("keygen", &["keygen", &p]);
    assert!(!again.wait(STARTUP).await.success());
    assert!(
        again.stderr().contains("already exists"),
        "{}",
        again.stderr()
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    let mut epochs = vec![];
    for _ in 0..3 {
        let mut r = Proc::spawn("keygen", &["keygen", "--rotate", &p]);
        assert!(r.wait(STARTUP).await.success(), "{}", r.stderr());
        let keys = mpcomm::keyfile::load(&path).unwrap();
        epochs.push((
            keys.send_key().epoch(),
            keys.accept_key().map(GroupKey::epoch),
        ));
    }
    assert_eq!(epochs, vec![(1, Some(2)), (2, Some(1)), (2, None)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_a_key_or_insecure_is_required() {
    let mut gm = Proc::spawn("group manager", &["group-manager", "--listen", "0.0.0.0:0"]);
    let status = gm.wait(STARTUP).await;
    assert!(!status.success());
    let err = gm.stderr();
    assert!(
        err.contains("without a group key") && err.contains("mpcomm keygen"),
        "{err}"
    );
    let gm = Proc::spawn(
        "group manager",
        &["group-manager", "--listen", "0.0.0.0:0", "--insecure"],
    );
    gm.line("listening on ").await;
    assert!(gm.stderr().contains("--insecure"), "{}", gm.stderr());
}

/// A keyed group: an outsider blasts clear datagrams (claiming member 1,
/// stamped 2⁶⁴−1) and datagrams sealed with another key at every peer
/// during a run. The run passes; both kinds are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_run_passes_while_outsiders_forge_datagrams() {
    within(Duration::from_secs(150), "the keyed run", async {
        let g = Group::start("keyed", 3, true).await;
        let mut server = g.server(40);
        let targets: Vec<SocketAddr> = g.peers.iter().map(|p| p.1).collect();
        let stop = Arc::new(tokio::sync::Notify::new());
        let other = KeyRing::single(GroupKey::new(1, [9; 32]));
        let forger = tokio::spawn(forge(
            targets,
            Arc::new(Mutex::new(0)),
            move |_, to, round| {
                let clear = forged_data(0, 1, to, round % 40);
                let mut sealer = Sealer::new(&other, 0, 1, 77 + round);
                let mut buf = clear.clone();
                buf.resize(MAX_DATAGRAM, 0);
                let n = sealer.seal(&mut buf, clear.len()).unwrap();
                buf.truncate(n);
                vec![clear, buf]
            },
            stop.clone(),
        ));
        let s = summary(&mut server).await;
        stop.notify_one();
        let sent = forger.await.unwrap();
        assert!(sent > 0);
        assert!(stat_sum(&s, "dropped_unsealed") > 0, "{s}");
        assert!(stat_sum(&s, "dropped_unauthenticated") > 0, "{s}");
        assert_eq!(stat_sum(&s, "dropped_replayed"), 0, "{s}");
        for (p, _, _) in &g.peers {
            // The peer's log names what it dropped.
            let err = p.stderr();
            assert!(
                err.contains("dropped and counted") && err.contains("dropped_unsealed"),
                "{err}"
            );
        }
    })
    .await
}

/// Without a key, datagrams that claim a member but come from another
/// address are dropped and counted (before, they replaced real messages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_spoofed_sources_are_dropped() {
    within(Duration::from_secs(150), "the insecure run", async {
        let g = Group::start("spoof", 3, false).await;
        let mut server = g.server(40);
        let targets: Vec<SocketAddr> = g.peers.iter().map(|p| p.1).collect();
        // The forger learns the run id as a member would (here: by asking).
        let run = Arc::new(Mutex::new(0u64));
        let stop = Arc::new(tokio::sync::Notify::new());
        let forger = {
            let run = run.clone();
            tokio::spawn(forge(
                targets,
                run,
                |r, to, round| {
                    let from = if to == 1 { 2 } else { 1 };
                    vec![forged_data(r, from, to, round % 40)]
                },
                stop.clone(),
            ))
        };
        // Learn the run id as soon as the run starts (a peer tells it to
        // whoever pings it, in the clear: there is no key).
        let control = g.peers[0].2;
        let watcher = tokio::spawn(async move {
            for _ in 0..4000 {
                if let Ok(r) =
                    request::<_, _, Reply>(control, &PeerCommand::Ping, Duration::from_secs(5))
                        .await
                    && let Some(id) = r.run
                {
                    *run.lock().unwrap() = id;
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let s = summary(&mut server).await;
        stop.notify_one();
        forger.await.unwrap();
        watcher.abort();
        assert!(stat_sum(&s, "dropped_wrong_source") > 0, "{s}");
        assert_eq!(stat_sum(&s, "dropped_bad_stamp"), 0, "{s}");
    })
    .await
}

/// A peer holding another key, or none, is refused by the group manager at
/// once, and exits saying the keys differ (it does not retry forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_another_key_is_refused_at_once() {
    let g = Group::start("wrongkey", 0, true).await;
    let other = keygen(&g.dir, "other.key").await;
    let gm = g.gm_addr.to_string();
    let other = other.to_string_lossy().into_owned();
    for (label, extra) in [
        ("another key", vec!["--key", other.as_str()]),
        ("no key", vec![]),
    ] {
        let mut args = vec!["peer", "--group-manager", &gm, "--name", "intruder"];
        args.extend(extra);
        let data_dir = g
            .dir
            .join(label.replace(' ', "-"))
            .to_string_lossy()
            .into_owned();
        args.extend(["--data-dir", &data_dir]);
        let mut p = Proc::spawn(label, &args);
        let status = p.wait(Duration::from_secs(30)).await;
        assert!(!status.success(), "{label}");
        let err = p.stderr();
        assert!(err.contains("keys differ"), "{label}: {err}");
    }
    // And a client without the key gets nothing from the group manager.
    let e = request::<_, _, Reply>(g.gm_addr, &GmRequest::List, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(e.is_key_mismatch(), "{e}");
}

/// 1,100 idle TCP connections (more than the group manager serves at once)
/// do not lock key holders out: the handshake has a deadline, so idle
/// connections are dropped (and logged) and a member gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_lock_out_key_holders() {
    let g = Group::start("idle", 0, true).await;
    let keys = mpcomm::keyfile::load(Path::new(g.key.as_deref().unwrap())).unwrap();
    let mut idle = Vec::new();
    for _ in 0..1100 {
        match TcpStream::connect(g.gm_addr).await {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connection {} failed: {e}", idle.len()),
        }
    }
    let answered = within(Duration::from_secs(60), "a keyed list request", async {
        loop {
            match request_keyed::<_, _, Reply>(
                g.gm_addr,
                &GmRequest::List,
                Duration::from_secs(5),
                Some(&keys),
            )
            .await
            {
                Ok(r) => return r,
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    })
    .await;
    assert!(answered.ok);
    drop(idle);
    let _ = &g._gm;
}
