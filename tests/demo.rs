//! `mpcomm demo`, end to end: the real binary starts a real group manager
//! and real peer processes on 127.0.0.1, runs `none` and `total`, and stops
//! everything. Every wait has a timeout, so a bug fails a test instead of
//! hanging it.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tempfile::TempDir;

use mpcomm_cli::roles::demo::{self, DemoOptions};
use mpcomm_core::OrderKind;
use serde_json::Value;

use common::procs::{Proc, assert_all_gone, children_of, processes_mentioning};

const BIN: &str = env!("CARGO_BIN_EXE_mpcomm");

/// A fresh directory under the system's temp dir, removed on drop.
fn temp_dir(tag: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("mpcomm-demo-test-{tag}-"))
        .tempdir()
        .expect("cannot create a temp dir")
}

/// Runs the binary with `args`, watching which children it starts; returns
/// (exit code, stdout, stderr, children seen).
async fn run_demo(args: &[&str], cwd: &Path) -> (i32, String, String, BTreeSet<Proc>) {
    let mut child = tokio::process::Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let read_out = tokio::spawn(async move {
        let mut s = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut s).await;
        s
    });
    let read_err = tokio::spawn(async move {
        let mut s = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut s).await;
        s
    });
    let mut seen = BTreeSet::new();
    let status = tokio::time::timeout(Duration::from_secs(180), async {
        loop {
            seen.extend(children_of(pid));
            tokio::select! {
                s = child.wait() => break s.unwrap(),
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    })
    .await
    .expect("the demo did not finish within 180 s");
    let out = read_out.await.unwrap();
    let err = read_err.await.unwrap();
    (status.code().unwrap_or(-1), out, err, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_shows_disorder_and_total_cures_it() {
    let tmp = temp_dir("json");
    let dir = tmp.path().join("demo");
    let dir_s = dir.to_string_lossy().into_owned();
    let (code, out, err, seen) = run_demo(
        &[
            "demo",
            "--peers",
            "4",
            "--messages",
            "40",
            "--json",
            "--data-dir",
            &dir_s,
        ],
        tmp.path(),
    )
    .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");

    // Exactly one JSON object on stdout.
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let runs = v["runs"].as_array().expect("a runs array");
    assert_eq!(runs.len(), 2, "{v}");
    let (none, total) = (&runs[0], &runs[1]);
    assert_eq!(none["order"], "none");
    assert_eq!(total["order"], "total");
    for r in runs {
        assert_eq!(r["passed"], true, "{r}");
        assert_eq!(r["delivered"], r["expected"], "{r}");
        assert_eq!(r["expected"], 4 * 4 * 40, "{r}");
        assert!(
            Path::new(r["run_dir"].as_str().unwrap())
                .join("summary.json")
                .is_file()
        );
    }
    // `none` promises only integrity and agreement; over two regions 40 ms
    // apart its peers disagree on the order.
    assert!(none["unordered_rounds"].as_u64().unwrap() > 0, "{none}");
    assert_eq!(total["unordered_rounds"], 0, "{total}");
    assert_eq!(total["total_order"], true, "{total}");

    // Nothing the demo started is left: not the processes it started (seen
    // while it ran: the group manager and the peers), nor any process with
    // the demo's directory on its command line.
    assert!(seen.len() >= 5, "saw only {seen:?}");
    assert_all_gone(&seen);
    assert_eq!(processes_mentioning(&dir_s), Vec::<u32>::new());
}

#[tokio::test]
async fn bad_arguments_exit_2_with_a_message() {
    let tmp = temp_dir("args");
    for (args, says) in [
        (&["demo", "--peers", "0"][..], "--peers"),
        (&["demo", "--peers", "2", "--regions", "3"][..], "--regions"),
        (&["demo", "--wan", "inter=far"][..], "--wan"),
        (&["demo", "--orders", "chaos"][..], "chaos"),
    ] {
        let (code, _out, err, _) = run_demo(args, tmp.path()).await;
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Nothing was created for a demo that could not start.
    assert!(!tmp.path().join("mpcomm-demo").exists());
}

/// A stand-in for the `mpcomm` binary: a shell script that runs the real
/// one, except for peer-2, which does `peer2` instead.
fn wrapper(dir: &Path, peer2: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("mpcomm-wrapper.sh");
    let script = format!(
        "#!/bin/sh\nfor a in \"$@\"; do if [ \"$a\" = peer-2 ]; then {peer2}; fi; done\nexec '{BIN}' \"$@\"\n"
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn options(exe: PathBuf, dir: &Path) -> DemoOptions {
    DemoOptions {
        peers: 4,
        messages: 20,
        orders: vec![OrderKind::None, OrderKind::Total],
        startup_timeout: Duration::from_secs(20),
        ..DemoOptions::new(exe, dir.join("demo"))
    }
}

#[tokio::test]
async fn a_peer_that_dies_at_startup_is_named_and_the_rest_is_stopped() {
    let tmp = temp_dir("dies");
    let exe = wrapper(tmp.path(), "echo 'cannot bind: disk on fire' >&2; exit 3");
    let opts = options(exe, tmp.path());
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        demo::run(&opts, &mut |_| {}, std::future::pending()),
    )
    .await
    .expect("demo::run did not return");
    let e = format!("{:#}", result.unwrap_err());
    eprintln!("the error, as a user sees it:\n{e}");
    assert!(e.contains("peer-2 exited before it was ready"), "{e}");
    assert!(e.contains("disk on fire"), "{e}");
    let dir = opts.data_dir.to_string_lossy().into_owned();
    assert_eq!(processes_mentioning(&dir), Vec::<u32>::new());
}

#[tokio::test]
async fn a_peer_that_hangs_at_startup_times_out_and_is_killed() {
    let tmp = temp_dir("hangs");
    let marker = tmp.path().join("hang-marker");
    std::fs::write(&marker, "").unwrap();
    // `exec` keeps the pid, so the demo's kill reaches the hanging process;
    // its command line names the marker, so we can look for it afterwards.
    let exe = wrapper(
        tmp.path(),
        &format!(
            "echo 'stuck forever' >&2; exec tail -f '{}'",
            marker.display()
        ),
    );
    let mut opts = options(exe, tmp.path());
    opts.startup_timeout = Duration::from_secs(3);
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        demo::run(&opts, &mut |_| {}, std::future::pending()),
    )
    .await
    .expect("demo::run did not return");
    let e = format!("{:#}", result.unwrap_err());
    eprintln!("the error, as a user sees it:\n{e}");
    assert!(e.contains("peer-2 did not get ready within"), "{e}");
    assert!(e.contains("stuck forever"), "{e}");
    assert_eq!(
        processes_mentioning(&marker.to_string_lossy()),
        Vec::<u32>::new()
    );
    let dir = opts.data_dir.to_string_lossy().into_owned();
    assert_eq!(processes_mentioning(&dir), Vec::<u32>::new());
}

#[tokio::test]
async fn an_interrupted_demo_stops_everything() {
    let tmp = temp_dir("interrupt");
    let mut opts = options(PathBuf::from(BIN), tmp.path());
    opts.messages = 1000; // a run of about a minute: the interruption comes first
    // "Ctrl-C" one second into the first run, whenever that starts.
    let run_started = tokio::sync::Notify::new();
    let interrupt = async {
        run_started.notified().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let result = tokio::time::timeout(
        Duration::from_secs(90),
        demo::run(
            &opts,
            &mut |ev| {
                if matches!(ev, demo::DemoEvent::RunStarting { .. }) {
                    run_started.notify_one();
                }
            },
            interrupt,
        ),
    )
    .await
    .expect("demo::run did not return");
    let outcome = result.unwrap();
    assert!(outcome.interrupted);
    assert!(outcome.runs.is_empty());
    assert!(!outcome.passed());
    let dir = opts.data_dir.to_string_lossy().into_owned();
    assert_eq!(processes_mentioning(&dir), Vec::<u32>::new());
}

/// Issue 10, item 13: Ctrl-C on the demo printed a `WARN … connection
/// reset` line per peer. Ctrl-C in a terminal sends SIGINT to every
/// process of the job — the demo and the processes it started — so the
/// peers are already going when the demo asks them to stop; that is not
/// worth a warning. (Here the peers are killed outright and the group
/// manager gets no signal, so that the demo surely finds the peers gone
/// while the group manager still lists them: the case that made the
/// noise, without a race between the peers unregistering and the demo.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_the_demo_quietly() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let tmp = temp_dir("ctrl-c");
    let dir = tmp.path().join("demo");
    let dir_arg = dir.to_string_lossy().into_owned();
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "demo",
            "--peers",
            "3",
            "--messages",
            "1000",
            "--data-dir",
            &dir_arg,
        ])
        // A job of its own, as a shell starts it.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap() as i32;
    let mut stderr = child.stderr.take().unwrap();
    let read_err = tokio::spawn(async move {
        let mut s = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut s).await;
        s
    });
    let mut stdout = child.stdout.take().unwrap();
    let drain = tokio::spawn(async move {
        let mut s = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut s).await;
    });
    // Wait for the first run to begin (its directory appears), then press
    // "Ctrl-C".
    let runs = dir.join("runs");
    tokio::time::timeout(Duration::from_secs(60), async {
        while std::fs::read_dir(&runs).map_or(0, |d| d.count()) == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the demo's first run did not start within 60 s");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let is_peer = |p: u32| {
        let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        // Arguments are separated by NUL bytes: `mpcomm peer …`.
        cmdline.split(|&b| b == 0).nth(1) == Some(&b"peer"[..])
    };
    for (child, _) in children_of(pid as u32) {
        if is_peer(child) {
            let _ = kill(Pid::from_raw(child as i32), Signal::SIGKILL);
        }
    }
    kill(Pid::from_raw(pid), Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the demo did not stop within 60 s")
        .unwrap();
    let err = read_err.await.unwrap();
    let _ = drain.await;
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(!err.contains("WARN"), "Ctrl-C made noise:\n{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(processes_mentioning(&dir_arg), Vec::<u32>::new());
}
