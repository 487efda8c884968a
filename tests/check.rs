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
    let out = check(&[&a, &b], &["--json", "--order", "total"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["passed"], true);
    assert_eq!(v["delivered"], 8);
}

/// Logs without a meta line (version 1) do not say their order: `check`
/// asks for it instead of assuming one.
#[test]
fn version_1_logs_need_their_order() {
    let d = temp_dir("v1-order");
    let a = write_log(d.path(), "a.jsonl", 5, 0, &GOOD);
    let out = check(&[&a], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--order"), "{}", text(&out));
}

/// Writes a version-2 log: meta line, deliveries, and an end line with
/// `end` as its status (none: a partial log, as a killed peer leaves it).
fn write_v2(
    dir: &Path,
    name: &str,
    (order, members, messages): (&str, usize, u64),
    peer: u16,
    msgs: &[(u16, u64)],
    end: Option<&str>,
) -> PathBuf {
    let mut text = format!(
        "{{\"type\":\"meta\",\"format\":2,\"run\":5,\"peer\":{peer},\"order\":\"{order}\",\"members\":{members},\"messages\":{messages}}}\n"
    );
    for (i, (sender, seq)) in msgs.iter().enumerate() {
        text.push_str(&format!(
            "{{\"run\":5,\"peer\":{peer},\"sender\":{sender},\"seq\":{seq},\"stamp\":{},\"sent_us\":1000,\"delivered_us\":{}}}\n",
            i + 1,
            1000 + 10 * i
        ));
    }
    if let Some(status) = end {
        text.push_str(&format!(
            "{{\"type\":\"end\",\"status\":\"{status}\",\"delivered\":{}}}\n",
            msgs.len()
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Issue 10, item 10: the same `none` logs passed as a directory and
/// failed as bare files (which were assumed to be `total`). Logs of
/// version 2 carry their order: the verdicts agree.
#[test]
fn bare_files_and_their_directory_give_the_same_verdict() {
    let d = temp_dir("same-verdict");
    let run = ("none", 2, 2);
    let a = write_v2(d.path(), "member-0.jsonl", run, 0, &GOOD, Some("completed"));
    let swapped = [(1, 0), (0, 0), (0, 1), (1, 1)];
    let b = write_v2(
        d.path(),
        "member-1.jsonl",
        run,
        1,
        &swapped,
        Some("completed"),
    );
    let summary = serde_json::json!({
        "params": {"order": "none", "messages": 2},
        "members": [{"id": 0, "status": "completed"}, {"id": 1, "status": "completed"}]
    });
    std::fs::write(d.path().join("summary.json"), summary.to_string()).unwrap();
    let from_dir = check(&[d.path()], &["--json"]);
    let from_files = check(&[&a, &b], &["--json"]);
    assert_eq!(from_dir.status.code(), Some(0), "{}", text(&from_dir));
    assert_eq!(from_files.status.code(), Some(0), "{}", text(&from_files));
    assert_eq!(from_dir.stdout, from_files.stdout);
    // A flag that contradicts the logs is refused.
    let out = check(&[&a, &b], &["--order", "total"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("the logs say their order is none"),
        "{}",
        text(&out)
    );
}

/// Issue 10, item 10: two truncated logs of a crashed run read
/// `integrity ok … PASS` unless the counts were typed. Partial logs (no end
/// line) never pass, whatever they hold.
#[test]
fn partial_logs_of_a_crashed_run_never_pass() {
    let d = temp_dir("crashed");
    let run = ("total", 2, 2);
    let a = write_v2(d.path(), "a.jsonl", run, 0, &GOOD[..2], None);
    let b = write_v2(d.path(), "b.jsonl", run, 1, &GOOD[..1], None);
    let out = check(&[&a, &b], &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(!t.contains("PASS"), "{t}");
    assert!(t.contains("partial"), "{t}");
    assert!(t.contains("consistent        yes"), "{t}");
    // One log of a group of two, even a complete one, does not pass either.
    let a = write_v2(d.path(), "a.jsonl", run, 0, &GOOD, Some("completed"));
    let out = check(&[&a], &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["missing_logs"], serde_json::json!([1]));
}

/// A failed run's directory, with a member that left no log: read, not
/// refused (it used to exit 2 naming the file that is not there).
#[test]
fn a_failed_run_directory_is_read_and_says_what_happened() {
    let d = temp_dir("failed-dir");
    let run = ("total", 3, 2);
    write_v2(
        d.path(),
        "member-0.jsonl",
        run,
        0,
        &GOOD[..3],
        Some("failed"),
    );
    write_v2(
        d.path(),
        "member-1.jsonl",
        run,
        1,
        &GOOD[..2],
        Some("failed"),
    );
    let summary = serde_json::json!({
        "error": "peer 2 (charlie) disconnected during the run (connection closed): its process probably died",
        "params": {"order": "total", "messages": 2},
        "members": [
            {"id": 0, "name": "alpha", "status": "failed", "error": "aborted by the comparison server", "at_s": 1.5},
            {"id": 1, "name": "bravo", "status": "failed", "error": "aborted by the comparison server", "at_s": 1.5},
            {"id": 2, "name": "charlie", "status": "missing", "error": "its control connection closed 0.9 s into the run (connection closed) before it reported", "at_s": 0.9}
        ]
    });
    std::fs::write(d.path().join("summary.json"), summary.to_string()).unwrap();
    let out = check(&[d.path()], &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    for needle in [
        "the run FAILED: peer 2 (charlie) disconnected",
        "no log",
        "charlie",
        "0.9 s into the run",
        "3 of 6",
        "prefix of one sequence",
        "FAIL (the run did not complete)",
    ] {
        assert!(t.contains(needle), "{needle:?} not in:\n{t}");
    }
    assert!(!t.contains("PASS"), "{t}");
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

/// One line of a hand-made log with views.
enum Line {
    /// A view: id, members, left.
    V(u32, &'static [u16], &'static [u16]),
    /// A delivery: sender, seq.
    D(u16, u64),
}
use Line::{D, V};

/// Writes a version-2 `total` log of a run of 3 members sending 2 messages
/// each, with view lines; `end` as in [`write_v2`].
fn write_viewed(dir: &Path, peer: u16, lines: &[Line], end: Option<&str>) -> PathBuf {
    let list = |ms: &[u16]| {
        ms.iter()
            .map(|m| m.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut text = format!(
        "{{\"type\":\"meta\",\"format\":2,\"run\":5,\"peer\":{peer},\"order\":\"total\",\"members\":3,\"messages\":2}}\n"
    );
    let mut delivered = 0;
    for (i, line) in lines.iter().enumerate() {
        match line {
            V(id, members, left) => text.push_str(&format!(
                "{{\"type\":\"view\",\"view\":{id},\"members\":[{}],\"joined\":[],\"left\":[{}],\"t_us\":{}}}\n",
                list(members),
                list(left),
                1000 + 10 * i
            )),
            D(sender, seq) => {
                delivered += 1;
                text.push_str(&format!(
                    "{{\"run\":5,\"peer\":{peer},\"sender\":{sender},\"seq\":{seq},\"delivered_us\":{}}}\n",
                    1000 + 10 * i
                ));
            }
        }
    }
    if let Some(status) = end {
        text.push_str(&format!(
            "{{\"type\":\"end\",\"status\":\"{status}\",\"delivered\":{delivered}}}\n"
        ));
    }
    let path = dir.join(format!("member-{peer}.jsonl"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Member 2 crashes after its first message; 0 and 1 go on in view 2.
/// `second` is what member 1 delivers after the first view line.
fn crash_run(d: &Path, second: &[Line]) -> Vec<PathBuf> {
    let survivor: &[Line] = &[
        V(1, &[0, 1, 2], &[]),
        D(0, 0),
        D(2, 0),
        V(2, &[0, 1], &[2]),
        D(1, 0),
        D(0, 1),
        D(1, 1),
    ];
    let mut one = vec![V(1, &[0, 1, 2], &[])];
    for l in second {
        one.push(match l {
            V(a, b, c) => V(*a, b, c),
            D(a, b) => D(*a, *b),
        });
    }
    vec![
        write_viewed(d, 0, survivor, Some("completed")),
        write_viewed(d, 1, &one, Some("completed")),
        write_viewed(d, 2, &[V(1, &[0, 1, 2], &[]), D(0, 0)], None),
    ]
}

/// Issue 11, item 5: a run with a view change passes when virtual
/// synchrony holds, and says who left instead of calling it missing.
#[test]
fn a_view_change_is_checked_with_virtual_synchrony() {
    let d = temp_dir("view-ok");
    let logs = crash_run(
        d.path(),
        &[
            D(0, 0),
            D(2, 0),
            V(2, &[0, 1], &[2]),
            D(1, 0),
            D(0, 1),
            D(1, 1),
        ],
    );
    let paths: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    let out = check(&paths, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("member 2 left in view 2"), "{t}");
    assert!(t.contains("virtual synchrony ok (1 view changes)"), "{t}");
    assert!(
        t.contains("view              2: members 0, 1 (without 2)"),
        "{t}"
    );
    let out = check(&paths, &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["passed"], true, "{v}");
    assert_eq!(v["virtual_synchrony"], true, "{v}");
    assert_eq!(v["left"], serde_json::json!([{"member": 2, "view": 2}]));
    assert_eq!(v["views"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(v["views"][1]["left"], serde_json::json!([2]));
    assert!(
        v["missing_logs"].as_array().is_none_or(Vec::is_empty),
        "{v}"
    );
    // The crashed member's log stays on its host: the survivors' pass alone.
    let out = check(&paths[..2], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Member 1 delivers member 2's last message only after the view change:
/// the survivors did not deliver the same set in view 1.
#[test]
fn a_violation_of_virtual_synchrony_fails_the_check() {
    let d = temp_dir("view-bad");
    let logs = crash_run(
        d.path(),
        &[
            D(0, 0),
            V(2, &[0, 1], &[2]),
            D(2, 0),
            D(1, 0),
            D(0, 1),
            D(1, 1),
        ],
    );
    let paths: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    let out = check(&paths, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("virtual synchrony VIOLATED: peers 0 and 1"),
        "{t}"
    );
    let out = check(&paths, &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["passed"], false, "{v}");
    assert_eq!(v["virtual_synchrony"], false, "{v}");
    let why = v["virtual_synchrony_detail"]["counterexample"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("different sets in it"), "{v}");
}

/// Logs whose only view line is the first view are checked exactly as logs
/// without view lines: same output, no view keys.
#[test]
fn logs_without_a_view_change_are_checked_as_before() {
    let plain = temp_dir("view-none-plain");
    let viewed = temp_dir("view-none-viewed");
    let run = ("total", 2, 2);
    let mut with_views = Vec::new();
    let mut without = Vec::new();
    for peer in 0..2u16 {
        let p = write_v2(
            plain.path(),
            &format!("member-{peer}.jsonl"),
            run,
            peer,
            &GOOD,
            Some("completed"),
        );
        let text = std::fs::read_to_string(&p).unwrap();
        let (meta, rest) = text.split_once('\n').unwrap();
        let v = viewed.path().join(format!("member-{peer}.jsonl"));
        std::fs::write(
            &v,
            format!("{meta}\n{{\"type\":\"view\",\"view\":1,\"members\":[0,1]}}\n{rest}"),
        )
        .unwrap();
        without.push(p);
        with_views.push(v);
    }
    let a: Vec<&Path> = without.iter().map(PathBuf::as_path).collect();
    let b: Vec<&Path> = with_views.iter().map(PathBuf::as_path).collect();
    for extra in [&[][..], &["--json"][..]] {
        let (x, y) = (check(&a, extra), check(&b, extra));
        assert_eq!(x.status.code(), Some(0), "{}", text(&x));
        assert_eq!(
            String::from_utf8_lossy(&x.stdout).replace(plain.path().to_str().unwrap(), "D"),
            String::from_utf8_lossy(&y.stdout).replace(viewed.path().to_str().unwrap(), "D"),
        );
        assert!(!text(&y).contains("virtual"), "{}", text(&y));
    }
}
