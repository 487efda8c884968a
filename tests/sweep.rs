//! `mpcomm sweep` over the simulator: a grid of group sizes and orders,
//! repeated, written as CSV, JSON and an SVG chart.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::procs::{Proc, assert_all_gone, children_of, processes_mentioning};

/// A fresh directory under the system's temp dir, removed on drop (also
/// when a test fails); each sweep writes into `out` below it.
fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("mpcomm-sweep-{tag}-"))
        .tempdir()
        .expect("cannot create a temp dir")
}

#[test]
fn a_simulated_sweep_shows_disorder_for_none_and_none_for_total() {
    let tmp = temp_dir("grid");
    let out_dir = tmp.path().join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_mpcomm"))
        .args([
            "sweep",
            "--peers",
            "2,4,6",
            "--messages",
            "40",
            "--order",
            "none,total",
            "--repeat",
            "3",
        ])
        .args([
            "--regions",
            "2",
            "--wan",
            "intra=2ms±1ms, inter=40ms±15ms",
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .expect("run mpcomm sweep");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(out_dir.join("results.csv")).expect("results.csv");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let (order, rounds, passed) = (col("order"), col("unordered_rounds"), col("passed"));
    let mut runs = 0;
    for line in lines {
        // The wan column is quoted and contains commas: split around it.
        let fields: Vec<&str> = line.split(',').collect();
        let shift = fields.len() - header.len(); // extra pieces of the quoted wan field
        let at = |i: usize| {
            if i > col("wan") {
                fields[i + shift]
            } else {
                fields[i]
            }
        };
        let unordered: u64 = at(rounds).parse().expect("a number");
        match at(order) {
            "none" => assert!(unordered > 0, "two regions should disorder `none`: {line}"),
            "total" => assert_eq!(unordered, 0, "`total` is never disordered: {line}"),
            other => panic!("unexpected order {other}"),
        }
        assert_eq!(at(passed), "true", "{line}");
        runs += 1;
    }
    assert_eq!(runs, 3 * 2 * 3);
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("results.json")).expect("results.json"),
    )
    .unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(18));
    let svg = std::fs::read_to_string(out_dir.join("sweep.svg")).expect("sweep.svg");
    assert!(svg.starts_with("<svg") && svg.contains("class=\"panel\""));
}

#[test]
fn bad_sweep_arguments_are_refused() {
    for args in [
        &["sweep", "--peers", "0"][..],
        &["sweep", "--order", "backwards"],
        &["sweep", "--wan", "inter=fast"],
        &["sweep", "--repeat", "0"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mpcomm"))
            .args(args)
            .output()
            .expect("run mpcomm sweep");
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(!out.stderr.is_empty(), "{args:?} should say why");
    }
}

// ---------------------------------------------------------------------------
// `mpcomm sweep --processes`: the same grid over real local processes.

/// Runs `mpcomm ARGS`, noting every child it starts while it runs, and
/// gives up (killing it) after `limit`. Returns (exit code, stdout, stderr,
/// children seen).
fn run_watched(args: &[&str], limit: std::time::Duration) -> (i32, String, String, BTreeSet<Proc>) {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_mpcomm"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mpcomm");
    // Read both pipes on threads, so a chatty child can never block.
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let started = std::time::Instant::now();
    let mut seen = BTreeSet::new();
    let status = loop {
        seen.extend(children_of(child.id()));
        if let Some(status) = child.try_wait().expect("wait for mpcomm") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mpcomm {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    (status.code().unwrap_or(-1), out, err, seen)
}

#[test]
fn a_process_sweep_runs_every_point_on_real_processes_and_leaves_none_behind() {
    let tmp = temp_dir("processes");
    let out_dir = tmp.path().join("out");
    let out_s = out_dir.to_string_lossy().into_owned();
    let (code, stdout, stderr, seen) = run_watched(
        &[
            "sweep",
            "--processes",
            "--peers",
            "2,3",
            "--messages",
            "10",
            "--order",
            "none,total",
            "--repeat",
            "1",
            "--min-interval",
            "1ms",
            "--max-interval",
            "5ms",
            "--wan",
            "intra=1ms±0.5ms, inter=10ms±5ms",
            "--seed",
            "40",
            "--out",
            &out_s,
        ],
        std::time::Duration::from_secs(240),
    );
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");

    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("results.json")).expect("results.json"),
    )
    .expect("results.json is JSON");
    let rows = json.as_array().expect("an array of rows");
    assert_eq!(rows.len(), 2 * 2, "one row per run: {json}");
    let mut seeds = Vec::new();
    for r in rows {
        assert_eq!(r["backend"], "processes", "{r}");
        assert_eq!(r["passed"], true, "{r}");
        assert_eq!(r["completed"], true, "{r}");
        let peers = r["peers"].as_u64().expect("peers");
        assert_eq!(r["expected"], peers * peers * 10, "{r}");
        assert_eq!(r["delivered"], r["expected"], "{r}");
        if r["order"] == "total" {
            assert_eq!(r["unordered_rounds"], 0, "{r}");
            assert_eq!(r["total_order"], true, "{r}");
        }
        // The row names its run's directory, and the run used the row's seed.
        let run_dir = std::path::PathBuf::from(r["run_dir"].as_str().expect("a run_dir"));
        assert!(run_dir.starts_with(&out_dir), "{run_dir:?}");
        let summary: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(run_dir.join("summary.json")).expect("summary.json"),
        )
        .expect("summary.json is JSON");
        assert_eq!(summary["params"]["seed"], r["seed"], "{summary}");
        assert_eq!(summary["params"]["min_interval"], 1000, "{summary}");
        assert_eq!(summary["params"]["max_interval"], 5000, "{summary}");
        seeds.push(r["seed"].as_u64().expect("a seed"));
    }
    assert_eq!(seeds, [40, 41, 42, 43], "seed + i, in grid order");

    // The CSV has the same rows, and the new column.
    let csv = std::fs::read_to_string(out_dir.join("results.csv")).expect("results.csv");
    let header = csv.lines().next().expect("a header");
    assert!(header.ends_with(",error,run_dir"), "{header}");
    assert_eq!(csv.lines().count(), 1 + 4);
    assert_eq!(
        csv.lines()
            .skip(1)
            .filter(|l| l.starts_with("processes,"))
            .count(),
        4
    );
    let svg = std::fs::read_to_string(out_dir.join("sweep.svg")).expect("sweep.svg");
    assert!(
        svg.contains("real processes"),
        "the chart says how it was made"
    );

    // Nothing is left running: neither the children seen while it ran (the
    // group managers and peers) nor anything naming the output directory.
    assert!(!seen.is_empty(), "the sweep started no processes?");
    assert_all_gone(&seen);
    assert_eq!(processes_mentioning(&out_s), Vec::<u32>::new());
}

#[test]
fn bad_process_sweep_arguments_are_refused_before_anything_starts() {
    let tmp = temp_dir("bad-args");
    let out_dir = tmp.path().join("out");
    let out_s = out_dir.to_string_lossy().into_owned();
    for (args, says) in [
        (&["--peers", "0"][..], "--peers"),
        (&["--peers", "1,2", "--regions", "2"], "--regions"),
        (&["--messages", "10,0"], "--messages"),
        (&["--wan", "inter=fast"], "--wan"),
        (
            &["--min-interval", "50ms", "--max-interval", "5ms"],
            "--min-interval",
        ),
    ] {
        let (code, _out, err, seen) = run_watched(
            &[&["sweep", "--processes", "--out", &out_s][..], args].concat(),
            std::time::Duration::from_secs(60),
        );
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?} should name {says}: {err}");
        assert!(seen.is_empty(), "{args:?} started {seen:?}");
    }
    assert!(!out_dir.exists(), "nothing is created for a refused sweep");
}

#[test]
fn an_interrupted_process_sweep_keeps_the_finished_rows_and_stops_everything() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let tmp = temp_dir("interrupt");
    let out_dir = tmp.path().join("out");
    let out_s = out_dir.to_string_lossy().into_owned();
    // A short run, then one of about 6 s: the interruption comes during it.
    let mut child = Command::new(env!("CARGO_BIN_EXE_mpcomm"))
        .args([
            "sweep",
            "--processes",
            "--peers",
            "2",
            "--messages",
            "10,2000",
        ])
        .args(["--order", "total", "--repeat", "1", "--min-interval", "1ms"])
        .args([
            "--max-interval",
            "5ms",
            "--wan",
            "intra=1ms±0.5ms, inter=5ms±2ms",
        ])
        .args(["--out", &out_s])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mpcomm sweep");
    // The second run has begun once its directory exists.
    let runs = out_dir.join("peers-2").join("runs");
    let started = Instant::now();
    while std::fs::read_dir(&runs).map_or(0, |d| d.count()) < 2 {
        if started.elapsed() > Duration::from_secs(60) || child.try_wait().ok().flatten().is_some()
        {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the second run did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for mpcomm sweep") {
            break s;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the interrupted sweep did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("results.json")).expect("results.json"),
    )
    .expect("results.json is JSON");
    let rows = json.as_array().expect("rows");
    assert_eq!(rows.len(), 1, "only the finished run: {json}");
    assert_eq!(rows[0]["messages"], 10);
    assert_eq!(rows[0]["passed"], true);
    assert_eq!(processes_mentioning(&out_s), Vec::<u32>::new());
}
