//! The explorer in a real browser: `mpcomm sim --out` writes a deterministic
//! run, headless Chromium opens its `report.html` under WebDriver
//! (Debian's `chromium` and `chromedriver`, driven by `fantoccini`), and
//! the test uses the page as a person would: it moves the time cursor to a
//! known event with the keyboard, and checks every peer's Lamport clock,
//! hold-back queue and "waits for" sentence against what the trace file
//! says; it clicks a message and checks that the page follows it; it steps
//! back; and it checks that the page reported no error.
//! Screenshots are kept under `target/` (`explorer-*.png`).
//!
//! Without chromium or chromedriver the test prints `SKIPPED` and passes —
//! unless `MPCOMM_NO_SKIP` is set, as `.ci/run` does: then it fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use mpcomm_core::trace::TraceLine;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_mpcomm");

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

fn target_dir() -> PathBuf {
    Path::new(BIN)
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
}

const FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
];

/// A simulated run written with `mpcomm sim --out`: 3 peers in two regions,
/// 5 messages each, `none` and `total`, seed 3.
fn simulate(dir: &Path) {
    let out = std::process::Command::new(BIN)
        .args([
            "sim",
            "--peers",
            "3",
            "--messages",
            "5",
            "--order",
            "none,total",
            "--seed",
            "3",
            "--out",
        ])
        .arg(dir)
        .output()
        .expect("run mpcomm sim");
    assert!(
        out.status.success(),
        "mpcomm sim failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the explorer must show for one peer with the cursor on event `k`:
/// the peer's clock after its last event up to `k`, its hold-back queue
/// (records sent or arrived and not yet delivered, in (stamp, sender)
/// order) and the sentence of its last wait whose head is still queued.
fn expected(lines: &[TraceLine], k: usize, peer: u16) -> (u64, Vec<String>, Option<String>) {
    let mine: Vec<&TraceLine> = lines[..=k].iter().filter(|l| l.peer == peer).collect();
    let clock = mine.last().map_or(0, |l| l.clock);
    let key = |l: &TraceLine| (l.sender, l.kind.clone(), l.seq);
    let mut queue: Vec<&TraceLine> = Vec::new();
    for l in &mine {
        match l.event.as_str() {
            "send" | "arrive" if !queue.iter().any(|q| key(q) == key(l)) => queue.push(l),
            "deliver" => queue.retain(|q| key(q) != key(l)),
            _ => {}
        }
    }
    queue.sort_by_key(|l| (l.stamp, l.sender));
    let why = mine
        .iter()
        .rev()
        .find(|l| l.event == "wait")
        .filter(|w| queue.iter().any(|q| key(q) == key(w)))
        .and_then(|w| w.why.clone());
    let names = queue
        .iter()
        .map(|l| match l.kind.as_deref() {
            Some("eos") => format!("the end-of-stream marker of {}", l.sender),
            _ => format!("{}:{}", l.sender, l.seq),
        })
        .collect();
    (clock, names, why)
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("text of {css}: {e}"))
}

/// The left arrow key, as WebDriver names it.
const LEFT: char = '\u{E012}';

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_steps_through_a_simulated_run() {
    let (Some(chromium), Some(driver)) = (
        find(&["chromium", "chromium-browser"]),
        find(&["chromedriver"]),
    ) else {
        assert!(
            std::env::var_os("MPCOMM_NO_SKIP").is_none(),
            "chromium or chromedriver is not installed and MPCOMM_NO_SKIP is set"
        );
        println!("SKIPPED: chromium or chromedriver not installed");
        return;
    };
    let tmp = tempfile::Builder::new()
        .prefix("mpcomm-explorer-browser-")
        .tempdir()
        .expect("temp dir");
    let runs = tmp.path().join("runs");
    simulate(&runs);
    let report = runs.join("total").join("report.html");
    let trace = mpcomm_sim::trace::read(
        std::io::BufReader::new(
            std::fs::File::open(runs.join("total/trace.jsonl")).expect("trace"),
        ),
        "trace.jsonl",
    )
    .expect("read the trace");
    let lines = trace.lines;

    // Without scripts the page shows the static diagram, unfolded, and a
    // note; the script folds it (checked in `drive`).
    let html = std::fs::read_to_string(&report).expect("read the report");
    assert!(html.contains("<details id=\"static-diagram\" open>"));
    assert!(html.contains("<noscript>"));

    // chromedriver on a free loopback port.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let _driver = tokio::process::Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromedriver");
    let profile = tmp.path().join("profile");
    let mut caps = serde_json::Map::new();
    let mut args: Vec<String> = FLAGS.iter().map(|s| s.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.push("--window-size=1400,1000".into());
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": chromium, "args": args}),
    );
    let url = format!("http://127.0.0.1:{port}");
    let mut client = None;
    for _ in 0..100 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let c = client.expect("chromedriver did not accept a session within 10 s");
    let result = tokio::time::timeout(Duration::from_secs(120), drive(&c, &report, &lines)).await;
    let _ = c.close().await;
    result.expect("the browser session took over 120 s");
}

async fn drive(c: &Client, report: &Path, lines: &[TraceLine]) {
    c.goto(&format!("file://{}", report.display()))
        .await
        .expect("open the report");
    // Errors from here on are collected by the page.
    c.execute(
        "window.__errors = []; window.addEventListener('error', e => window.__errors.push(String(e.message)));\
         const ce = console.error; console.error = function () { window.__errors.push(Array.from(arguments).join(' ')); ce.apply(console, arguments); };",
        vec![],
    )
    .await
    .expect("install the error collector");
    let live = c
        .execute(
            "return document.getElementById('explorer').classList.contains('live')",
            vec![],
        )
        .await
        .expect("ask the page");
    assert_eq!(live, json!(true), "the explorer's script ran at load");
    let folded = c
        .execute(
            "return document.getElementById('static-diagram').open",
            vec![],
        )
        .await
        .expect("ask the page");
    assert_eq!(folded, json!(false), "the script folds the static diagram");
    let shot = |name: &'static str| async move {
        let png = c.screenshot().await.expect("screenshot");
        let path = target_dir().join(name);
        std::fs::write(&path, png).expect("keep the screenshot");
        println!("screenshot: {}", path.display());
    };
    shot("explorer-start.png").await;

    // A known event: the third wait of the run that names someone.
    let k = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.event == "wait")
        .map(|(i, _)| i)
        .nth(2)
        .expect("the total run waits");
    // Step there as a person would: to the first event, then ▶ k times.
    let button = |id: &'static str| async move {
        c.find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no #{id}: {e}"))
    };
    button("ex-start").await.click().await.expect("first event");
    let next = button("ex-next").await;
    for _ in 0..k {
        next.click().await.expect("next event");
    }
    let status = text(c, "#ex-status").await;
    assert!(
        status.starts_with(&format!("Event {} of {} ", k + 1, lines.len())),
        "{status}"
    );
    for peer in 0..3u16 {
        let (clock, queue, why) = expected(lines, k, peer);
        let panel = format!("#ex-panels .peer[data-peer=\"{peer}\"]");
        assert_eq!(
            text(c, &format!("{panel} .clock")).await,
            clock.to_string(),
            "peer {peer}'s clock at event {k}"
        );
        let items = c
            .find_all(Locator::Css(&format!("{panel} li[data-msg]")))
            .await
            .expect("queue items");
        let mut shown = Vec::new();
        for li in items {
            shown.push(li.attr("data-msg").await.expect("attr").unwrap_or_default());
        }
        assert_eq!(shown, queue, "peer {peer}'s hold-back queue at event {k}");
        let shown_why = c
            .find_all(Locator::Css(&format!("{panel} .why")))
            .await
            .expect("why");
        match (&why, shown_why.first()) {
            (Some(w), Some(el)) => assert_eq!(&el.text().await.expect("text"), w, "peer {peer}"),
            (None, None) => {}
            (w, el) => panic!(
                "peer {peer}: expected {w:?}, the page shows {}",
                el.is_some()
            ),
        }
    }
    // The wait at the cursor is named in the status line too.
    assert!(status.contains("waits for"), "{status}");
    shot("explorer-wait.png").await;

    // Click a delivery: the page follows that message on every lane.
    let mark = c
        .find(Locator::Css("#ex-diagram circle.dlv"))
        .await
        .expect("a delivery mark");
    let title = mark
        .find(Locator::Css("title"))
        .await
        .expect("its title")
        .prop("textContent")
        .await
        .expect("title text")
        .unwrap_or_default();
    let msg = title
        .split_whitespace()
        .nth(2)
        .expect("the title names the message")
        .to_string();
    mark.click().await.expect("click the mark");
    let follow = text(c, "#ex-follow").await;
    assert!(follow.starts_with(&format!("Following {msg} ")), "{follow}");
    let followed = c
        .find_all(Locator::Css("#ex-diagram .followed"))
        .await
        .expect("followed elements");
    assert!(
        followed.len() >= 4,
        "send, arrows, bars and deliveries of {msg}"
    );
    shot("explorer-follow.png").await;

    // Step back one event, with the keyboard this time.
    let diagram = button("ex-diagram").await;
    diagram
        .send_keys(&LEFT.to_string())
        .await
        .expect("step back");
    let status = text(c, "#ex-status").await;
    assert!(
        status.starts_with(&format!("Event {} of ", k)),
        "one event back: {status}"
    );

    let errors = c
        .execute("return window.__errors", vec![])
        .await
        .expect("read the errors");
    assert_eq!(errors, json!([]), "the page reported errors");
}
