//! Unit tests of the report: counts, windowing, size, escaping, and inputs
//! that are anything but complete.

use std::collections::BTreeMap;
use tempfile::TempDir;

use mpcomm_check::{LogEntry, PeerLog, RunSpec, check};
use mpcomm_core::OrderKind;

use super::*;

/// A log of `peer` delivering `msgs` (sender, seq) in that order, one every
/// 10 ms, each sent 5 ms before it was delivered.
fn log(peer: u16, msgs: &[(u16, u64)]) -> PeerLog {
    PeerLog {
        meta: None,
        end: None,
        views: Vec::new(),
        peer,
        entries: msgs
            .iter()
            .enumerate()
            .map(|(i, &(sender, seq))| LogEntry {
                run: 7,
                peer,
                sender,
                seq,
                stamp: Some(i as u64 + 1),
                sent_us: Some(1_000_000 + i as u64 * 10_000),
                delivered_us: Some(1_005_000 + i as u64 * 10_000 + u64::from(peer) * 700),
                after: None,
                op: None,
            })
            .collect(),
    }
}

fn member(id: u16, name: &str, region: &str) -> ReportMember {
    ReportMember {
        id,
        name: name.into(),
        region: region.into(),
        status: "completed".into(),
        error: None,
        entries: 0,
        stats: BTreeMap::from([("datagrams_sent".to_string(), 42)]),
    }
}

/// A complete input: findings from the real checker.
fn input(order: OrderKind, logs: Vec<PeerLog>, messages: u64) -> ReportInput {
    let n = logs.len();
    let findings = check(&RunSpec::uniform(order, n, messages), &logs);
    ReportInput {
        title: "20261129-000000-none".into(),
        run: Some(7),
        passed: Some(findings.passed),
        params: ReportParams {
            messages: Some(messages),
            order: Some(order.to_string()),
            wan: Some("intra=1ms, inter=40ms".into()),
            ..Default::default()
        },
        members: (0..n as u16)
            .map(|i| member(i, &format!("peer-{i}"), if i < 2 { "r0" } else { "r1" }))
            .collect(),
        findings: Some(findings),
        logs,
        ..Default::default()
    }
}

/// Three peers, two senders with two messages each; peer 2 swaps the first
/// two (the crate example of mpcomm-check).
fn small() -> ReportInput {
    let a = [(0, 0), (1, 0), (0, 1), (1, 1)];
    let b = [(1, 0), (0, 0), (0, 1), (1, 1)];
    let mut i = input(OrderKind::None, vec![log(0, &a), log(1, &a), log(2, &b)], 2);
    // Only members 0 and 1 sent: the checker expects what the logs hold.
    let spec = RunSpec {
        order: OrderKind::None,
        members: 3,
        sent: vec![2, 2, 0],
    };
    i.findings = Some(check(&spec, &i.logs));
    i
}

fn count(html: &str, needle: &str) -> usize {
    html.matches(needle).count()
}

#[test]
fn one_lane_per_peer_and_one_mark_per_delivery() {
    let html = render_report(&small());
    assert_eq!(count(&html, "class=\"lane\""), 3);
    assert_eq!(count(&html, "class=\"mark\""), 12);
    for p in 0..3 {
        assert_eq!(
            count(&html, &format!("class=\"lane\" data-peer=\"{p}\"")),
            1
        );
    }
    assert!(html.contains("data-peer=\"2\" data-sender=\"1\" data-seq=\"0\""));
    // The tooltip, in the promised words.
    assert!(
        html.contains("peer 2 delivered 1:0 (stamp 1) at 6.4 ms, delivery #1"),
        "{html}"
    );
    // Round 0 is unordered: ringed in each lane, and named.
    assert_eq!(count(&html, "class=\"ring\""), 3);
    assert!(html.contains("first unordered round (round 1)"));
    // Each of the four messages is joined across the three lanes.
    assert_eq!(count(&html, "<polyline points="), 4);
    assert!(html.contains("All 4 deliveries of every peer are drawn."));
    // The verdict, with the checker's own words and the original metric.
    assert!(html.contains("Found <strong>2</strong> unordered message rounds (of 4 rounds)"));
    assert!(
        html.contains("peer 2 delivered 1:0 before 0:0; peer 0 delivered them the other way round")
    );
    // Self-contained: nothing fetched, no script.
    for banned in ["<script", "http://", "https://", "src=", "@import", "url("] {
        let outside_svg_ns = html.replace("http://www.w3.org/2000/svg", "");
        assert!(!outside_svg_ns.contains(banned), "{banned}");
    }
}

#[test]
fn ties_are_drawn_side_by_side_in_delivery_order() {
    let mut i = small();
    for l in &mut i.logs {
        for e in &mut l.entries {
            e.delivered_us = Some(2_000_000);
        }
    }
    let html = render_report(&i);
    for p in 0..3 {
        let lane = html
            .split(&format!("class=\"lane\" data-peer=\"{p}\""))
            .nth(1)
            .and_then(|rest| rest.split("</g>").next())
            .expect("lane");
        let xs: Vec<f64> = lane
            .split("<circle cx=\"")
            .skip(1)
            .filter_map(|c| c.split('"').next()?.parse().ok())
            .collect();
        assert_eq!(xs.len(), 4);
        assert!(xs.windows(2).all(|w| w[0] < w[1]), "{xs:?}");
    }
}

#[test]
fn hostile_names_are_shown_not_run() {
    let mut i = small();
    i.members[0].name = "<script>alert('x')</script>".into();
    i.members[1].region = "\"><img src=x onerror=alert(1)>".into();
    i.members[2].error = Some("</td></table><b>boom</b>&".into());
    i.error = Some("<iframe>".into());
    i.title = "<title>".into();
    i.missing.push("<svg onload=alert(1)>".into());
    let html = render_report(&i);
    assert!(!html.contains("<script"));
    assert!(!html.contains("<img"));
    assert!(!html.contains("<iframe"));
    assert!(!html.contains("<b>boom"));
    assert!(!html.contains("<svg onload"));
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("&lt;/td&gt;&lt;/table&gt;&lt;b&gt;boom&lt;/b&gt;&amp;"));
    // Still exactly one <title> element for the page.
    assert_eq!(count(&html, "<title>mpcomm report"), 1);
}

/// `peers` peers each delivering `peers × messages` messages, in the same
/// order except that from position `disorder_at` on, odd peers swap every
/// pair of neighbours.
fn large(peers: u16, messages: u64, disorder_at: usize) -> ReportInput {
    let order: Vec<(u16, u64)> = (0..messages)
        .flat_map(|q| (0..peers).map(move |s| (s, q)))
        .collect();
    let logs = (0..peers)
        .map(|p| {
            let mut o = order.clone();
            if p % 2 == 1 {
                for k in (disorder_at..o.len() - 1).step_by(2) {
                    o.swap(k, k + 1);
                }
            }
            log(p, &o)
        })
        .collect();
    input(OrderKind::None, logs, messages)
}

#[test]
fn long_runs_are_windowed_and_say_so() {
    let i = large(4, 1000, 2000);
    let f = i.findings.as_ref().expect("checked");
    assert_eq!(f.first_unordered_round, Some(2000));
    let html = render_report(&i);
    assert_eq!(count(&html, "class=\"lane\""), 4);
    assert_eq!(count(&html, "class=\"mark\""), 4 * (HEAD + AROUND));
    assert!(
        html.contains("showing deliveries 1–150 and 1,951–2,100 of 4,000 per peer"),
        "{}",
        &html[..2000]
    );
    assert_eq!(count(&html, "class=\"cut\""), 1);
    assert_eq!(count(&html, "class=\"ring\""), 4);
}

#[test]
fn the_report_of_8_peers_by_10000_messages_stays_small() {
    let i = large(8, 10_000, 50_000);
    let html = render_report(&i);
    assert!(
        html.len() < 3_000_000,
        "{} bytes is too much for a report",
        html.len()
    );
    assert_eq!(count(&html, "class=\"lane\""), 8);
    assert_eq!(count(&html, "class=\"mark\""), 8 * (HEAD + AROUND));
}

#[test]
fn one_peer() {
    let html = render_report(&input(
        OrderKind::Total,
        vec![log(0, &[(0, 0), (0, 1), (0, 2)])],
        3,
    ));
    assert_eq!(count(&html, "class=\"lane\""), 1);
    assert_eq!(count(&html, "class=\"mark\""), 3);
    assert_eq!(count(&html, "class=\"ring\""), 0);
    assert!(html.contains("headline pass"));
    assert!(html.contains("All 3 rounds agree"));
}

#[test]
fn empty_logs_and_no_members() {
    let html = render_report(&ReportInput::default());
    assert_eq!(count(&html, "class=\"lane\""), 0);
    assert!(html.contains("nothing to draw"));
    assert!(html.contains("No latency histogram"));
    assert!(html.contains("No verdict"));

    let mut i = input(OrderKind::Total, vec![log(0, &[]), log(1, &[])], 0);
    i.findings = None;
    let html = render_report(&i);
    assert_eq!(count(&html, "class=\"lane\""), 2);
    assert_eq!(count(&html, "class=\"mark\""), 0);
    assert!(html.contains("(no deliveries)"));
}

#[test]
fn missing_times_fall_back_to_positions() {
    let mut i = small();
    for l in &mut i.logs {
        for e in &mut l.entries {
            e.delivered_us = None;
            e.stamp = None;
        }
    }
    let html = render_report(&i);
    assert_eq!(count(&html, "class=\"mark\""), 12);
    assert!(html.contains("placed by delivery position"));
    assert!(html.contains("(no stamp) at an unknown time, delivery #4"));
    assert!(html.contains("No latency histogram"));
}

#[test]
fn a_failed_run_draws_what_exists() {
    let mut i = small();
    i.findings = None;
    i.passed = Some(false);
    i.error = Some("peer 2 (peer-2) disconnected during the run".into());
    i.logs.truncate(2);
    i.members[2].status = "missing".into();
    i.members.push(member(3, "peer-3", "r1"));
    i.missing.push("no delivery log for member 2".into());
    let html = render_report(&i);
    assert_eq!(count(&html, "class=\"lane\""), 4);
    assert_eq!(count(&html, "class=\"mark\""), 8);
    assert!(html.contains("no log; status missing"));
    assert!(html.contains("The run failed:"));
    assert!(html.contains("no delivery log for member 2"));
    assert!(html.contains("No verdict"));
    assert!(html.contains("headline fail"));
}

/// A fresh directory under the system's temp dir, removed on drop.
fn temp_dir(tag: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("mpcomm-report-{tag}-"))
        .tempdir()
        .expect("cannot create a temp dir")
}

fn write_log(dir: &Path, name: &str, l: &PeerLog) {
    let mut buf = Vec::new();
    for e in &l.entries {
        mpcomm_check::log::write_entry(&mut buf, e).expect("in memory");
    }
    std::fs::write(dir.join(name), buf).expect("write log");
}

/// A run directory as the server writes it, from the server's own types.
fn run_dir(tag: &str, failed: bool) -> TempDir {
    use crate::roles::server::{MemberOutcome, RunOutcome, RunParams};
    let dir = temp_dir(tag);
    let i = small();
    let outcome = RunOutcome {
        run: 7,
        run_dir: dir.path().to_path_buf(),
        passed: !failed,
        error: failed.then(|| "peer 2 (peer-2) failed: boom".to_string()),
        params: RunParams::new(2, OrderKind::None),
        duration_s: 1.5,
        members: i
            .members
            .iter()
            .map(|m| MemberOutcome {
                id: m.id,
                name: m.name.clone(),
                region: m.region.clone(),
                status: if failed && m.id == 2 {
                    "failed".into()
                } else {
                    "completed".into()
                },
                error: None,
                entries: 4,
                at_s: None,
                stats: m.stats.clone(),
            })
            .collect(),
        findings: if failed { None } else { i.findings.clone() },
        report: None,
        report_error: None,
        unreadable_logs: Vec::new(),
        views: Vec::new(),
        left: Vec::new(),
        virtual_synchrony: None,
        virtual_synchrony_detail: None,
    };
    std::fs::write(
        dir.path().join("summary.json"),
        serde_json::to_vec_pretty(&outcome).expect("serialise"),
    )
    .expect("write summary");
    write_log(dir.path(), "member-0.jsonl", &i.logs[0]);
    if failed {
        // Member 1's log is cut in the middle of a line; member 2 failed
        // and its log is under the failed name.
        std::fs::write(
            dir.path().join("member-1.jsonl"),
            "{\"run\":7,\"peer\":1,\"sen",
        )
        .expect("write");
        write_log(dir.path(), "member-2.failed.jsonl", &i.logs[2]);
    } else {
        write_log(dir.path(), "member-1.jsonl", &i.logs[1]);
        write_log(dir.path(), "member-2.jsonl", &i.logs[2]);
    }
    dir
}

#[test]
fn write_report_reads_a_run_directory() {
    let dir = run_dir("ok", false);
    let path = write_report(dir.path()).expect("report written");
    assert_eq!(path, dir.path().join("report.html"));
    let html = std::fs::read_to_string(&path).expect("read back");
    assert_eq!(count(&html, "class=\"lane\""), 3);
    assert_eq!(count(&html, "class=\"mark\""), 12);
    assert!(html.contains("Found <strong>2</strong> unordered message rounds"));
    assert!(!html.contains("Not in this report"));
    // Nothing left behind but the report.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("tmp")), "{names:?}");
}

#[test]
fn write_report_of_a_failed_run_names_what_is_missing() {
    let dir = run_dir("failed", true);
    let path = write_report(dir.path()).expect("report written");
    let html = std::fs::read_to_string(&path).expect("read back");
    assert_eq!(count(&html, "class=\"lane\""), 3);
    assert_eq!(count(&html, "class=\"mark\""), 8);
    assert!(html.contains("member-1.jsonl, line 1: the last line is truncated"));
    assert!(html.contains("peer 2 (peer-2) failed: boom"));
    assert!(html.contains("No verdict"));
}

#[test]
fn write_report_without_a_summary_is_an_error() {
    let dir = temp_dir("empty");
    let e = write_report(dir.path()).expect_err("no summary");
    assert!(format!("{e:#}").contains("summary.json"), "{e:#}");
    std::fs::write(dir.path().join("summary.json"), "{not json").expect("write");
    assert!(write_report(dir.path()).is_err());
}

/// A traced simulated run of the demo's size: the explorer is in the page,
/// the page stays under 2 MB, and a `none` run's headline says what it
/// shows instead of wearing a success badge.
#[test]
fn a_traced_demo_sized_run_has_an_explorer_under_2_mb() {
    use mpcomm_sim::{SimConfig, rundir};
    let tmp = temp_dir("traced");
    for order in [OrderKind::None, OrderKind::Total] {
        let cfg = SimConfig {
            peers: 6,
            messages: 100,
            order,
            seed: 7,
            trace: Some(mpcomm_core::TraceLimits::default()),
            ..SimConfig::default()
        };
        let out = mpcomm_sim::run(&cfg);
        let dir = tmp.path().join(order.as_str());
        rundir::write(&dir, &cfg, &out).unwrap();
        let input = load(&dir).unwrap();
        assert!(input.trace.as_ref().is_some_and(|t| !t.meta.windowed()));
        let html = render_report(&input);
        assert!(html.len() < 2_000_000, "{order}: {} bytes", html.len());
        assert!(html.contains("id=\"explorer-data\""));
        assert!(html.contains("The trace holds every event of the run"));
        if order == OrderKind::None {
            let f = input.findings.as_ref().unwrap();
            assert!(
                html.contains(&format!(
                    "{} of 600 rounds differ — <code>none</code> promises no order",
                    f.unordered_rounds
                )),
                "{}",
                &html[..3000]
            );
            assert!(!html.contains("headline pass"));
        } else {
            assert!(html.contains("headline pass"));
        }
    }
}

/// Text from a trace cannot end the script block it is embedded in.
#[test]
fn trace_text_cannot_close_the_script() {
    use mpcomm_sim::trace::{Trace, TraceMeta};
    let mut i = small();
    i.trace = Some(Trace {
        meta: TraceMeta {
            event: "meta".into(),
            format: 1,
            peers: 3,
            order: Some("none".into()),
            events: 1,
            complete_until_us: None,
            stamps_up_to: None,
            left_out: 0,
        },
        lines: vec![mpcomm_core::trace::TraceLine {
            peer: 0,
            t_us: 5,
            event: "wait".into(),
            sender: 0,
            seq: 0,
            kind: None,
            stamp: 1,
            clock: 1,
            vc: None,
            waiting_for: Some(vec![1]),
            cause: Some("gap".into()),
            why: Some("</script><script>alert(1)</script>".into()),
        }],
    });
    let html = render_report(&i);
    assert!(html.contains("id=\"explorer-data\""));
    assert!(!html.contains("<script>alert(1)"));
    assert_eq!(
        html.matches("</script>").count(),
        2,
        "the data block and the script"
    );
}
