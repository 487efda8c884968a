//! `report.html` in a real browser: a small demo over real processes writes
//! its report, headless Chromium loads it, and the test checks from the
//! rendered DOM that the diagram is there (one lane per peer, one mark per
//! delivery) and that the page logged nothing to its console. A screenshot
//! is kept under `target/` for people to look at.
//!
//! Chromium is Debian's `chromium` package (`.ci/run` installs it). Where it
//! is not installed the test prints `SKIPPED: chromium not installed` and
//! passes, so that a developer without it can still run the suite — unless
//! `MPCOMM_NO_SKIP` is set, as `.ci/run` does: then it fails.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tempfile::TempDir;

use mpcomm_cli::roles::demo::{self, DemoOptions};
use mpcomm_core::OrderKind;

const BIN: &str = env!("CARGO_BIN_EXE_mpcomm");

/// How long one Chromium invocation may take before it is killed.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

/// A fresh directory under the system's temp dir, removed on drop.
fn temp_dir(tag: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("mpcomm-report-browser-{tag}-"))
        .tempdir()
        .expect("cannot create a temp dir")
}

/// The Chromium executable on PATH, if any.
fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Cargo's target directory: the test binary's `mpcomm` lives in
/// `target/<profile>/`.
fn target_dir() -> PathBuf {
    Path::new(BIN)
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
}

/// Runs headless Chromium on `page` with `extra` arguments, killing it
/// after [`BROWSER_TIMEOUT`]; returns (stdout, stderr).
async fn chromium(exe: &Path, profile: &Path, page: &Path, extra: &[&str]) -> (String, String) {
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(format!("file://{}", page.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let child = cmd.spawn().expect("start chromium");
    let out = tokio::time::timeout(BROWSER_TIMEOUT, child.wait_with_output())
        .await
        .expect("chromium did not finish within 60 s (killed)")
        .expect("chromium's output");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Console messages of the page (Chromium logs them as `…:CONSOLE…`), and
/// uncaught exceptions.
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_report_renders_in_chromium() {
    let Some(browser) = find_chromium() else {
        // CI sets MPCOMM_NO_SKIP: there, a missing browser is a failure.
        assert!(
            std::env::var_os("MPCOMM_NO_SKIP").is_none(),
            "chromium is not installed and MPCOMM_NO_SKIP is set"
        );
        println!("SKIPPED: chromium not installed");
        return;
    };
    let tmp = temp_dir("demo");
    // Three peers in two regions over the emulated WAN, order `none`: the
    // far region's messages arrive late, so the diagram has crossings.
    let opts = DemoOptions {
        peers: 3,
        messages: 20,
        orders: vec![OrderKind::None],
        startup_timeout: Duration::from_secs(20),
        ..DemoOptions::new(PathBuf::from(BIN), tmp.path().join("demo"))
    };
    let outcome = tokio::time::timeout(
        Duration::from_secs(120),
        demo::run(&opts, &mut |_| {}, std::future::pending()),
    )
    .await
    .expect("the demo did not finish within 120 s")
    .expect("the demo ran");
    let [run] = outcome.runs.as_slice() else {
        panic!("one run expected, got {}", outcome.runs.len());
    };
    assert!(run.passed, "{:?}", run.error);
    let report = run.report.clone().expect("the run has a report");
    assert_eq!(report, run.run_dir.join("report.html"));
    assert!(report.is_file(), "{} is missing", report.display());
    // The demo's --json runs carry both paths (they are RunOutcome).
    let json = serde_json::to_value(run).expect("serialise the outcome");
    assert_eq!(json["report"].as_str(), report.to_str());
    assert_eq!(json["run_dir"].as_str(), run.run_dir.to_str());

    // What the diagram must show: every delivery in the logs.
    let mut deliveries = 0;
    for k in 0..3 {
        let log = mpcomm_check::log::read_log_file(run.run_dir.join(format!("member-{k}.jsonl")))
            .expect("read a member's log");
        deliveries += log.entries.len();
    }
    assert_eq!(deliveries, 3 * 3 * 20);

    let profile = tmp.path().join("chromium-profile");
    let (dom, stderr) = chromium(&browser, &profile, &report, &["--dump-dom"]).await;
    assert!(
        dom.contains("id=\"spacetime\""),
        "no diagram in the DOM; chromium said:\n{stderr}"
    );
    assert_eq!(console_lines(&stderr), Vec::<&str>::new(), "console output");
    assert_eq!(dom.matches("class=\"lane\"").count(), 3, "lanes");
    for p in 0..3 {
        assert!(dom.contains(&format!("class=\"lane\" data-peer=\"{p}\"")));
    }
    assert_eq!(dom.matches("class=\"mark\"").count(), deliveries, "marks");
    assert!(dom.contains("id=\"latency\""), "the latency histogram");
    assert!(dom.contains("unordered message rounds"), "the verdict");

    let shot = target_dir().join("report-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let (_, stderr) = chromium(
        &browser,
        &profile,
        &report,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,1000",
        ],
    )
    .await;
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "no screenshot at {}:\n{stderr}",
        shot.display()
    );
    println!("screenshot of the report: {}", shot.display());
}
