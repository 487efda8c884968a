//! Faults of real processes on 127.0.0.1, and what survives them:
//!
//! 1. a peer killed with `kill -9` mid-run: its log on disk holds what it
//!    delivered and reads as *partial*; the server's run directory keeps
//!    the survivors' logs, and `mpcomm check` reads the failed run (issue 10,
//!    items 5 and 6);
//! 2. a peer stopped with `SIGSTOP`: the run ends soon after the others
//!    notice, not at the server's deadline (item 7);
//! 3. `--expect` holds for every run: after a crash the next run waits for
//!    a replacement, and a run that cannot get its members fails saying so
//!    (item 8);
//! 4. a peer or server started before the group manager waits for it, and
//!    one that gives up says what to do; running peers survive a restart of
//!    the group manager (item 12);
//! 5. what a new user hit (items 11 and 13).
//!
//! No assertion is about speed. The one bound on time (item 2) separates a
//! run that ends within seconds of the fault from one that waits for a
//! deadline ten times longer.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mpcomm::control::{GmRequest, PeerCommand, Reply, request};
use nix::sys::signal::Signal;
use serde_json::Value;
use tokio::time::Instant;

use common::cluster::{
    Child, Cluster, STARTUP, Stream, check, lines_of, temp_dir, wait_until_running, within,
};

/// A bound on each whole test: far above what it needs, so that only a
/// hang trips it.
const TEST_LIMIT: Duration = Duration::from_secs(120);

const FOUR: [(&str, &str); 4] = [
    ("alpha", "r0"),
    ("bravo", "r0"),
    ("charlie", "r1"),
    ("delta", "r1"),
];

/// The JSON objects a `server --json` printed on stdout, one per run.
fn runs_printed(server: &Child) -> Vec<Value> {
    server
        .stdout()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("the server printed bad JSON"))
        .collect()
}

/// The JSON line of the next run the server prints.
async fn next_run(server: &mut Child, limit: Duration) -> Value {
    let line = server.line_within(Stream::Out, "{", limit).await;
    serde_json::from_str(&format!("{{{line}")).expect("the server printed bad JSON")
}

/// The delivery lines (no `type` key) of a log file's text.
fn deliveries(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|l| l.starts_with('{') && !l.contains("\"type\""))
        .count()
}

/// The files of a peer's run directory.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Waits until the peer's log of `run` has at least `n` deliveries on disk,
/// and returns its path and how many it had. The log is looked for under
/// any name the peer may give it.
async fn wait_for_deliveries_on_disk(data_dir: &Path, run: u64, n: usize) -> (PathBuf, usize) {
    let dir = data_dir.join(format!("run-{run}"));
    within(
        Duration::from_secs(20),
        "deliveries to appear in the peer's log on disk while it runs",
        async {
            loop {
                for f in files_in(&dir) {
                    let count = deliveries(&lines_of(&f));
                    if count >= n {
                        return (f, count);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        },
    )
    .await
}

// ---------------------------------------------------------------------------
// 1. kill -9
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_peer_leaves_a_partial_log_and_the_run_keeps_every_other_log() {
    within(TEST_LIMIT, "the whole test", async {
        let mut c = Cluster::start("kill9", &[], &FOUR).await;
        // About 80 × 100 ms = 8 s of sending: the kill lands mid-run, even
        // on a loaded machine. The whole log (320 deliveries, about 40 KiB)
        // is smaller than the peer's 64 KiB write buffer, so only a timely
        // flush puts deliveries on disk while the peer runs.
        let mut server = c.server(&[
            "--expect",
            "4",
            "--messages",
            "80",
            "--order",
            "total",
            "--min-interval",
            "50ms",
            "--max-interval",
            "150ms",
            "--peer-timeout",
            "2s",
            "--deadline",
            "60s",
        ]);
        let victim = c.peer("charlie");
        let run = wait_until_running(victim.control, None).await;
        // Durable means: on disk while the peer runs, not only at the end.
        let (log, seen) = wait_for_deliveries_on_disk(&victim.data_dir, run, 10).await;
        assert!(
            seen < 4 * 80,
            "the deliveries reached the disk only when the run was over"
        );
        victim.proc.kill();
        let _ = victim.proc.wait(STARTUP).await;

        // The victim's own log: a meta line, at least what was seen on disk
        // before the kill, no end line: partial, and said to be so.
        assert_eq!(
            log.file_name().and_then(|n| n.to_str()),
            Some("member-2.jsonl"),
            "the log is written under its final name"
        );
        let lines = lines_of(&log);
        assert!(lines[0].contains("\"type\":\"meta\""), "{}", lines[0]);
        assert!(deliveries(&lines) >= seen);
        let last = lines.last().expect("a line");
        assert!(!last.contains("\"type\":\"end\""), "{last}");
        let run_dir = log.parent().expect("a run directory").to_path_buf();
        for f in files_in(&run_dir) {
            assert!(
                !f.to_string_lossy().ends_with(".tmp"),
                "a temporary file is left: {}",
                f.display()
            );
        }
        let (code, text) = check(&[&log.to_string_lossy()]);
        assert_eq!(code, Some(1), "{text}");
        assert!(text.contains("partial"), "{text}");
        assert!(!text.contains("PASS"), "{text}");

        // The server ends the run at once, naming the victim, and keeps
        // every survivor's log.
        let status = server.wait(Duration::from_secs(60)).await;
        server.assert_no_panic();
        assert_eq!(status.code(), Some(1), "{}", server.stderr());
        let outcome = runs_printed(&server).pop().expect("a run");
        assert_eq!(outcome["passed"], false, "{outcome}");
        let error = outcome["error"].as_str().expect("a failed run says why");
        assert!(error.contains("charlie"), "{error}");
        let dir = PathBuf::from(outcome["run_dir"].as_str().expect("run_dir"));
        for (id, name) in [(0, "alpha"), (1, "bravo"), (3, "delta")] {
            let kept = dir.join(format!("member-{id}.jsonl"));
            let lines = lines_of(&kept);
            assert!(
                deliveries(&lines) > 0,
                "{name}'s log is not in the run directory ({}): {:?}",
                kept.display(),
                files_in(&dir)
            );
            assert!(lines[0].contains("\"type\":\"meta\""), "{}", lines[0]);
            let end = lines.last().expect("a line");
            assert!(
                end.contains("\"type\":\"end\"") && end.contains("\"failed\""),
                "{end}"
            );
        }
        for file in ["summary.json", "report.html"] {
            assert!(dir.join(file).is_file(), "no {file} for a failed run");
        }

        // `check` reads the failed run directory: it failed, who stopped,
        // how far each got, and that what was delivered is consistent.
        let (code, text) = check(&[&dir.to_string_lossy()]);
        assert_eq!(code, Some(1), "{text}");
        assert!(!text.contains("PASS"), "{text}");
        assert!(text.contains("charlie"), "{text}");
        assert!(text.contains("no log"), "{text}");
        assert!(text.contains("prefix"), "{text}");
        let (code, json) = check(&[&dir.to_string_lossy(), "--json"]);
        assert_eq!(code, Some(1), "{json}");
        let f: Value = serde_json::from_str(&json).expect("check --json");
        assert_eq!(f["passed"], false);
        assert_eq!(f["complete"], false);
        assert_eq!(f["consistent"], true, "{f}");
        assert_eq!(f["missing_logs"], serde_json::json!([2]));

        // The same verdict from the bare files, the victim's partial log
        // among them.
        let mut files: Vec<String> = [0, 1, 3]
            .iter()
            .map(|id| {
                dir.join(format!("member-{id}.jsonl"))
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        files.push(log.to_string_lossy().into_owned());
        let mut args: Vec<&str> = files.iter().map(String::as_str).collect();
        args.push("--json");
        let (code, json) = check(&args);
        assert_eq!(code, Some(1), "{json}");
        let f: Value = serde_json::from_str(&json).expect("check --json");
        assert_eq!(f["passed"], false);
        assert_eq!(f["consistent"], true, "{f}");
        assert_eq!(f["partial_logs"], serde_json::json!([2]));

        // The victim, started again on the same data directory, names the
        // partial log its predecessor left (and deletes nothing).
        let again = c.add_peer("charlie", "r1").await;
        let err = within(
            Duration::from_secs(20),
            "the restarted peer to name the partial log",
            async {
                loop {
                    let err = again.proc.stderr();
                    if err.contains(&*log.to_string_lossy()) {
                        return err;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        )
        .await;
        assert!(err.contains("left incomplete"), "{err}");
        assert!(log.is_file());
    })
    .await
}

// ---------------------------------------------------------------------------
// 2. SIGSTOP
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_peer_ends_the_run_soon_after_the_others_notice() {
    within(TEST_LIMIT, "the whole test", async {
        let mut c = Cluster::start("sigstop", &[], &FOUR).await;
        let deadline = Duration::from_secs(90);
        let mut server = c.server(&[
            "--expect",
            "4",
            "--messages",
            "200",
            "--order",
            "total",
            "--min-interval",
            "10ms",
            "--max-interval",
            "30ms",
            "--peer-timeout",
            "2s",
            "--deadline",
            "90s",
        ]);
        let victim = c.peer("bravo");
        wait_until_running(victim.control, None).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        victim.proc.signal(Signal::SIGSTOP);
        let stopped = Instant::now();
        let status = server.wait(deadline).await;
        let took = stopped.elapsed();
        eprintln!("the run ended {took:?} after a peer was stopped");
        c.peer("bravo").proc.signal(Signal::SIGCONT);
        // The others give up after 2 s of silence; the server then ends the
        // run within seconds — far from its 90 s deadline.
        assert!(
            took < Duration::from_secs(30),
            "the run took {took:?} to end after a peer was stopped"
        );
        assert_eq!(status.code(), Some(1), "{}", server.stderr());
        let outcome = runs_printed(&server).pop().expect("a run");
        let error = outcome["error"].as_str().expect("a failed run says why");
        assert!(error.contains("bravo"), "{error}");
        let dir = PathBuf::from(outcome["run_dir"].as_str().expect("run_dir"));
        for id in [0, 2, 3] {
            assert!(
                deliveries(&lines_of(&dir.join(format!("member-{id}.jsonl")))) > 0,
                "member {id}'s log is missing: {:?}",
                files_in(&dir)
            );
        }
    })
    .await
}

// ---------------------------------------------------------------------------
// 3. --expect across runs
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_holds_for_every_run_after_a_crash_and_a_departure() {
    within(TEST_LIMIT, "the whole test", async {
        let mut c = Cluster::start("expect", &[], &FOUR).await;
        let mut server = c.server(&[
            "--runs",
            "3",
            "--expect",
            "4",
            // Room for a new peer to start between runs on a loaded
            // machine; run 3 then waits this long before it fails.
            "--expect-timeout",
            "8s",
            "--messages",
            "300",
            "--order",
            "total",
            "--min-interval",
            "5ms",
            "--max-interval",
            "15ms",
            "--peer-timeout",
            "2s",
            "--deadline",
            "30s",
        ]);
        // Run 1 (about 3 s of sending, so that the kill lands mid-run even
        // on a loaded machine): delta crashes. The group manager still
        // lists it.
        let first = wait_until_running(c.peer("delta").control, None).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        c.peer("delta").proc.kill();
        let run1 = next_run(&mut server, Duration::from_secs(60)).await;
        assert_eq!(run1["passed"], false, "{run1}");
        // Run 2 must not start with three peers, nor fail on the dead one:
        // it waits, and a new peer comes.
        c.add_peer("echo", "r1").await;
        let second = wait_until_running(c.peer("echo").control, Some(first)).await;
        assert_ne!(first, second);
        // Echo leaves in the middle of run 2, politely.
        let _: Reply = request(
            c.peer("echo").control,
            &PeerCommand::Stop,
            Duration::from_secs(5),
        )
        .await
        .expect("echo does not stop");
        let run2 = next_run(&mut server, Duration::from_secs(60)).await;
        let names: Vec<&str> = run2["members"]
            .as_array()
            .expect("members")
            .iter()
            .filter_map(|m| m["name"].as_str())
            .collect();
        assert_eq!(names, ["alpha", "bravo", "charlie", "echo"], "{run2}");
        // Run 3 cannot get four members: it fails, saying so.
        let status = server.wait(Duration::from_secs(60)).await;
        server.assert_no_panic();
        assert_ne!(status.code(), Some(0));
        let err = server.stderr();
        assert!(
            err.contains("3 of the 4 expected peers"),
            "run 3 does not say who is missing:\n{err}"
        );
        assert_eq!(runs_printed(&server).len(), 2, "{}", server.stdout());
    })
    .await
}

/// While the server waits for peers, it says so now and then, not ten
/// times a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_peers_does_not_flood_the_log() {
    within(TEST_LIMIT, "the whole test", async {
        let c = Cluster::start("waiting", &[], &FOUR[..1]).await;
        let gm = c.gm_addr.to_string();
        let data = c.server_dir().to_string_lossy().into_owned();
        // Not --json: progress is shown.
        let mut server = Child::spawn(
            "server",
            &[
                "server",
                "--group-manager",
                &gm,
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                &data,
                "--expect",
                "2",
                "--expect-timeout",
                "3s",
                "--messages",
                "5",
            ],
        );
        let status = server.wait(Duration::from_secs(30)).await;
        assert_ne!(status.code(), Some(0));
        let err = server.stderr();
        let waiting = err.lines().filter(|l| l.contains("waiting for")).count();
        assert!(
            (1..=3).contains(&waiting),
            "{waiting} lines about waiting in 3 s:\n{err}"
        );
        assert!(err.contains("1 of the 2 expected peers"), "{err}");
    })
    .await
}

// ---------------------------------------------------------------------------
// 4. the group manager, late or restarted
// ---------------------------------------------------------------------------

/// A port nobody listens on (right now).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_and_a_server_started_before_the_group_manager_wait_for_it() {
    within(TEST_LIMIT, "the whole test", async {
        let dir = temp_dir("late-gm");
        let gm = format!("127.0.0.1:{}", free_port());
        let data = dir.path().join("peer").to_string_lossy().into_owned();
        let mut peer = Child::spawn(
            "peer",
            &[
                "peer",
                "--group-manager",
                &gm,
                "--bind",
                "127.0.0.1:0",
                "--control",
                "127.0.0.1:0",
                "--name",
                "early",
                "--data-dir",
                &data,
            ],
        );
        let runs = dir.path().join("runs").to_string_lossy().into_owned();
        let mut server = Child::spawn(
            "server",
            &[
                "server",
                "--group-manager",
                &gm,
                "--listen",
                "127.0.0.1:0",
                "--expect",
                "1",
                "--messages",
                "3",
                "--min-interval",
                "1ms",
                "--max-interval",
                "2ms",
                "--data-dir",
                &runs,
                "--json",
                "--stop-when-done",
            ],
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(peer.alive(), "the peer gave up at once:\n{}", peer.stderr());
        assert!(
            server.alive(),
            "the server gave up at once:\n{}",
            server.stderr()
        );
        let mut manager = Child::spawn("group manager", &["group-manager", "--listen", &gm]);
        manager.line(Stream::Out, "listening on ").await;
        peer.line(Stream::Out, "peer early registered").await;
        let status = server.wait(Duration::from_secs(60)).await;
        assert!(status.success(), "{}", server.stderr());
        assert_eq!(runs_printed(&server)[0]["passed"], true);
        assert!(peer.wait(STARTUP).await.success());
        assert!(manager.wait(STARTUP).await.success());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giving_up_on_the_group_manager_says_what_to_do_once() {
    within(TEST_LIMIT, "the whole test", async {
        let dir = temp_dir("no-gm");
        let gm = format!("127.0.0.1:{}", free_port());
        let data = dir.path().join("peer").to_string_lossy().into_owned();
        for args in [
            vec![
                "peer",
                "--group-manager",
                &gm,
                "--connect-timeout",
                "1s",
                "--data-dir",
                &data,
            ],
            vec![
                "server",
                "--group-manager",
                &gm,
                "--listen",
                "127.0.0.1:0",
                "--expect",
                "1",
                "--expect-timeout",
                "1s",
                "--messages",
                "1",
            ],
        ] {
            let mut p = Child::spawn(args[0], &args);
            let status = p.wait(Duration::from_secs(30)).await;
            assert_eq!(status.code(), Some(2));
            let err = p.stderr();
            assert!(
                err.contains(&format!("is the group manager running at {gm}?")),
                "{err}"
            );
            assert!(err.contains("mpcomm group-manager"), "{err}");
            assert_eq!(
                err.matches("Connection refused").count(),
                1,
                "the cause is said once:\n{err}"
            );
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_peers_survive_a_restart_of_the_group_manager() {
    within(TEST_LIMIT, "the whole test", async {
        let port = free_port();
        let gm: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let gm_arg = gm.to_string();
        let mut manager = Child::spawn(
            "group manager",
            &["group-manager", "--listen", &gm_arg, "--ttl", "1s"],
        );
        manager.line(Stream::Out, "listening on ").await;
        let dir = temp_dir("gm-restart");
        let mut peers = Vec::new();
        for name in ["p1", "p2"] {
            let data = dir.path().join(name).to_string_lossy().into_owned();
            let mut p = Child::spawn(
                name,
                &[
                    "peer",
                    "--group-manager",
                    &gm_arg,
                    "--bind",
                    "127.0.0.1:0",
                    "--control",
                    "127.0.0.1:0",
                    "--name",
                    name,
                    "--data-dir",
                    &data,
                ],
            );
            p.line(Stream::Out, &format!("peer {name} registered"))
                .await;
            peers.push(p);
        }
        manager.kill();
        let _ = manager.wait(STARTUP).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut manager = Child::spawn(
            "group manager",
            &["group-manager", "--listen", &gm_arg, "--ttl", "1s"],
        );
        manager.line(Stream::Out, "listening on ").await;
        within(
            Duration::from_secs(20),
            "both peers to register again",
            async {
                loop {
                    if let Ok(reply) =
                        request::<_, _, Reply>(gm, &GmRequest::List, Duration::from_secs(2)).await
                        && reply.peers.as_ref().map(Vec::len) == Some(2)
                    {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        )
        .await;
        for p in &mut peers {
            assert!(p.alive(), "{} died:\n{}", p.label, p.stderr());
            p.signal(Signal::SIGTERM);
            assert!(p.wait(STARTUP).await.success());
        }
    })
    .await
}

// ---------------------------------------------------------------------------
// 5. what a new user hit
// ---------------------------------------------------------------------------

/// Runs the binary with `args`; returns (exit code, stdout + stderr).
async fn run(args: &[&str]) -> (Option<i32>, String) {
    let mut p = Child::spawn(&format!("mpcomm {}", args.join(" ")), args);
    let status = p.wait(STARTUP).await;
    p.assert_no_panic();
    (status.code(), format!("{}{}", p.stdout(), p.stderr()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_new_user_hit_is_refused_with_a_reason() {
    within(TEST_LIMIT, "the whole test", async {
        // (arguments, what the message must mention)
        let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
            // Without --messages the server would ask interactively; with
            // --runs it must not silently do nothing.
            (
                vec!["server", "--runs", "3", "--group-manager", "127.0.0.1:1"],
                vec!["--runs", "--messages"],
            ),
            // A bare `loss=1` is ambiguous (100 % or 1 %?).
            (
                vec!["server", "--wan", "inter=40ms,loss=1", "--messages", "1"],
                vec!["loss=1", "1%"],
            ),
            (vec!["sim", "--loss", "1"], vec!["1%"]),
            // One peer multicasts to itself: nothing to measure.
            (vec!["bench", "--peers", "1"], vec!["--peers", "at least 2"]),
        ];
        for (args, mentions) in cases {
            let (code, text) = run(&args).await;
            assert_eq!(code, Some(2), "mpcomm {args:?}:\n{text}");
            for m in mentions {
                assert!(
                    text.contains(m),
                    "mpcomm {args:?} does not mention {m:?}:\n{text}"
                );
            }
        }
        // A busy port gets a hint, as the group manager's does.
        let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = busy.local_addr().expect("addr").to_string();
        let (code, text) = run(&["server", "--listen", &addr, "--messages", "1"]).await;
        assert_eq!(code, Some(2), "{text}");
        assert!(text.contains("--listen"), "{text}");
        assert!(text.contains("another"), "{text}");
        // 100 % loss is accepted when written so, with a warning.
        let (code, text) = run(&["sim", "--loss", "100%", "--messages", "1", "--peers", "2"]).await;
        assert!(text.contains("warning"), "{code:?}: {text}");
    })
    .await
}
