//! `mpcomm check` on hand-made logs with known violations: each property,
//! each exit code, malformed input with the right message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tempfile::TempDir;

/// A fresh directory under the system's temp dir, removed on drop.
fn temp_dir(tag: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("mpcomm-check-{tag}-"))
        .tempdir()
        .expect("cannot create a temp dir")
}

/// Writes a log of `peer` delivering `msgs` (sender, seq) in that order.
fn write_log(dir: &Path, name: &str, run: u64, peer: u16, msgs: &[(u16, u64)]) -> PathBuf {
    let mut text = String::new();
    for (i, (sender, seq)) in msgs.iter().enumerate() {
        text.push_str(&format!(
            "{{\"run\":{run},\"peer\":{peer},\"sender\":{sender},\"seq\":{seq},\"stamp\":{},\"sent_us\":1000,\"delivered_us\":{}}}\n",
            i + 1,
            1000 + 10 * i
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn check(args: &[&Path], extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mpcomm"))
        .arg("check")
        .args(args)
        .args(extra)
        .output()
        .expect("run mpcomm check")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// (order, peer 1's deliveries, verdict line, counter-example).
type Case<'a> = (&'a str, &'a [(u16, u64)], &'a str, &'a str);

const GOOD: [(u16, u64); 4] = [(0, 0), (1, 0), (0, 1), (1, 1)];

#[test]
fn a_correct_run_exits_0() {
    let d = temp_dir("good");
    let a = write_log(d.path(), "a.jsonl", 5, 0, &GOOD);
    let b = write_log(d.path(), "b.jsonl", 5, 1, &GOOD);
    let out = check(&[&a, &b], &["--order", "total"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("Found 0 unordered message rounds (of 4)"),
        "{}",
        text(&out)
    );
    let out = check(&[&a, &b], &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["passed"], true);
    assert_eq!(v["delivered"], 8);
}

#[test]
fn each_violated_property_exits_1_with_its_counterexample() {
    let d = temp_dir("bad");
    let a = write_log(d.path(), "a.jsonl", 5, 0, &GOOD);
    let cases: [Case; 4] = [
        (
            "total",
            &[(1, 0), (0, 0), (0, 1), (1, 1)],
            "total order       VIOLATED",
            "peer 1 delivered 1:0 before 0:0; peer 0 delivered them the other way round",
        ),
        (
            "total",
            &[(0, 0), (1, 0), (0, 1)],
            "agreement         VIOLATED",
            "peer 0 delivered 1:1 but peer 1 never did",
        ),
        (
            "fifo",
            &[(0, 1), (1, 0), (0, 0), (1, 1)],
            "fifo              VIOLATED",
            "peer 1 delivered 0:1 before 0:0",
        ),
        (
            "none",
            &[(0, 0), (1, 0), (0, 0), (0, 1), (1, 1)],
            "integrity         VIOLATED",
            "peer 1 delivered 0:0 twice",
        ),
    ];
    for (order, msgs, verdict, example) in cases {
        let b = write_log(d.path(), "b.jsonl", 5, 1, msgs);
        let out = check(&[&a, &b], &["--order", order, "--messages", "2"]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{order}: {t}");
        assert!(
            t.contains(verdict) && t.contains(example),
            "{order}: expected {verdict:?} with {example:?} in\n{t}"
        );
    }
}

#[test]
fn disorder_under_none_is_reported_but_not_a_failure() {
    let d = temp_dir("none");
    let a = write_log(d.path(), "a.jsonl", 5, 0, &GOOD);
    let b = write_log(d.path(), "b.jsonl", 5, 1, &[(1, 0), (0, 0), (0, 1), (1, 1)]);
    let out = check(&[&a, &b], &["--order", "none"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "none promises no order: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("Found 2 unordered message rounds"),
        "{}",
        text(&out)
    );
}

#[test]
fn unreadable_input_exits_2_naming_file_line_and_reason() {
    let d = temp_dir("unreadable");
    let a = write_log(d.path(), "a.jsonl", 5, 0, &GOOD);
    let cases: [(&str, &str, &str); 4] = [
        (
            "truncated.jsonl",
            "{\"run\":5,\"peer\":1,\"sender\":0,\"seq\":0}\n{\"run\":5,\"pe",
            "line 2: the last line is truncated",
        ),
        (
            "missing.jsonl",
            "{\"run\":5,\"peer\":1,\"sender\":0}\n",
            "line 1: missing field \"seq\"",
        ),
        ("garbage.jsonl", "hello world\n", "line 1: not a log entry"),
        (
            "other-run.jsonl",
            "{\"run\":6,\"peer\":1,\"sender\":0,\"seq\":0}\n",
            "is of run 6, the others of run 5",
        ),
    ];
    for (name, content, want) in cases {
        let path = d.path().join(name);
        std::fs::write(&path, content).unwrap();
        let out = check(&[&a, &path], &[]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {t}");
        assert!(t.contains(want), "{name}: expected {want:?} in {t}");
        if !name.starts_with("other") {
            assert!(t.contains(name), "{name}: the message names the file: {t}");
        }
    }
    let out = check(&[&d.path().join("does-not-exist.jsonl")], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("cannot open"), "{}", text(&out));
    let out = check(&[d.path()], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a directory without summary.json: {}",
        text(&out)
    );
    assert!(text(&out).contains("not a run directory"), "{}", text(&out));
}

#[test]
fn a_run_directory_supplies_order_and_counts() {
    let d = temp_dir("rundir");
    write_log(d.path(), "member-0.jsonl", 5, 0, &GOOD);
    write_log(
        d.path(),
        "member-1.jsonl",
        5,
        1,
        &[(0, 0), (1, 0), (1, 1), (0, 1)],
    );
    let summary = serde_json::json!({
        "params": {"order": "total", "messages": 2},
        "members": [{"id": 0, "status": "completed"}, {"id": 1, "status": "completed"}]
    });
    std::fs::write(d.path().join("summary.json"), summary.to_string()).unwrap();
    let out = check(&[d.path()], &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["order"], "total");
    assert_eq!(v["total_order"], false);
    assert_eq!(v["expected"], 8);
}
