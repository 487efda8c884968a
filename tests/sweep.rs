//! `mpcomm sweep` over the simulator: a grid of group sizes and orders,
//! repeated, written as CSV, JSON and an SVG chart.

use std::process::Command;

#[test]
fn a_simulated_sweep_shows_disorder_for_none_and_none_for_total() {
    let out_dir = std::env::temp_dir().join(format!("mpcomm-sweep-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
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
    let _ = std::fs::remove_dir_all(&out_dir);
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
