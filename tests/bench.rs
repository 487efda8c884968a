//! `mpcomm bench` end to end, small: the figures are all there and `total`
//! delivered the same sequence everywhere. (Speed is measured by running
//! the benchmark, never asserted in tests.)

use std::process::Command;

/// Runs `mpcomm bench ARGS --json`, which must succeed, and returns its
/// JSON object.
fn bench_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_mpcomm"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .expect("run mpcomm bench");
    assert!(
        out.status.success(),
        "bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn bench_reports_every_figure_for_every_order() {
    let v = bench_json(&["--peers", "3", "--messages", "500", "--order", "none,total"]);
    for order in ["none", "total", "raw_udp"] {
        let f = &v[order];
        for key in [
            "delivered_per_s_per_peer",
            "p50_us",
            "p99_us",
            "p999_us",
            "cpu_s",
            "peak_rss_kib",
            "same_order",
        ] {
            assert!(!f[key].is_null(), "{order} lacks {key}: {f}");
        }
        assert!(
            f["delivered_per_s_per_peer"].as_f64().unwrap_or(0.0) > 0.0,
            "{order}: {f}"
        );
        assert!(f["peak_rss_kib"].as_u64().unwrap_or(0) > 0, "{order}: {f}");
    }
    for order in ["none", "total"] {
        assert_eq!(
            v[order]["delivered"], v[order]["expected"],
            "{order} delivered everything"
        );
        assert_eq!(v[order]["delivered"], 4500);
    }
    // The baseline sends one datagram per message and member: 3 × 500 × 3.
    assert_eq!(v["raw_udp"]["datagrams_sent"], 4500, "{}", v["raw_udp"]);
    assert_eq!(
        v["total"]["same_order"], true,
        "total order: one sequence everywhere"
    );
}

#[test]
fn bench_rejects_bad_arguments() {
    for args in [
        &["bench", "--peers", "0"][..],
        &["bench", "--size", "4"],
        &["bench", "--order", "sideways"],
        &["bench", "--ack-delay", "5s"],
        &["bench", "--ack-delay", "soon"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mpcomm"))
            .args(args)
            .output()
            .expect("run mpcomm bench");
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(!out.stderr.is_empty(), "{args:?} should say why");
    }
}

/// Acknowledgements that wait for data to ride on change the cost, never
/// the order.
#[test]
fn delayed_acknowledgements_keep_the_order() {
    let v = bench_json(&[
        "--peers",
        "3",
        "--messages",
        "300",
        "--rate",
        "3000",
        "--order",
        "total",
        "--no-baseline",
        "--ack-delay",
        "2ms",
    ]);
    assert_eq!(v["total"]["delivered"], 2700, "{}", v["total"]);
    assert_eq!(v["total"]["same_order"], true, "{}", v["total"]);
}
