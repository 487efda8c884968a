//! `mpcomm demo`: the whole system on this machine — `none`, then `total`,
//! side by side (see [`mpcomm_cli::roles::demo`]).
//!
//! This module parses the arguments, shows progress on stderr (an
//! `indicatif` bar on a terminal; when stderr is a file or a pipe, one
//! plain line per phase instead of redraws), and prints the comparison
//! table — or, with `--json`, one JSON object — on stdout.
//!
//! Exit status: 0 if every run kept its order's promises, 1 if a check
//! failed, 2 on a setup error, 130 when interrupted (Ctrl-C or SIGTERM).

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mpcomm_cli::roles::demo::{self, DEFAULT_WAN, DemoEvent, DemoOptions, DemoOutcome};
use mpcomm_cli::roles::server::{RunOutcome, ServerEvent};
use mpcomm_core::OrderKind;

/// Arguments of `mpcomm demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of peer processes.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u16).range(1..=64))]
    peers: u16,
    /// Messages each peer multicasts per run.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    messages: u64,
    /// Regions the peers are spread over (consecutive blocks of peers).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    regions: u16,
    /// The emulated wide-area network, e.g. 'intra=2ms±1ms, inter=80ms±30ms,
    /// loss=1%' (probabilities as 1% or 0.01), or `off` for the plain
    /// loopback. The default is also `mpcomm sim`'s and `mpcomm sweep`'s.
    #[arg(long, default_value = DEFAULT_WAN)]
    wan: String,
    /// Delivery orders to run, one run each, comma-separated.
    #[arg(
        long,
        alias = "order",
        default_value = "none,total",
        value_delimiter = ','
    )]
    orders: Vec<OrderKind>,
    /// Where to put runs, peer data and process logs (default: a new
    /// directory mpcomm-demo/YYYYMMDD-HHMMSS here).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print one JSON object {"runs":[...]} (each run's summary) instead of
    /// the table.
    #[arg(long)]
    json: bool,
    /// A teaching preset: 4 peers × 12 messages, few enough that every
    /// report reads on a laptop screen without scrolling.
    #[arg(long, conflicts_with_all = ["peers", "messages"])]
    teach: bool,
    /// The group key file every process uses (default: the demo makes a
    /// fresh one in its directory, group.key).
    #[arg(long = "key", value_name = "FILE", env = super::key::KEY_ENV)]
    key: Option<PathBuf>,
}

/// The teaching preset's group size and messages per peer.
const TEACH: (u16, u64) = (4, 12);

/// Runs `mpcomm demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe()
        .context("cannot find the mpcomm binary to start the processes from")?;
    // The peers get the settings as understood here (`loss=1%`), and the
    // user sees them so before anything starts.
    let net = match args.wan.trim() {
        "off" | "none" | "" => None,
        spec => Some(super::wan::parse(spec).map_err(anyhow::Error::msg)?),
    };
    let wan = net.as_ref().map(ToString::to_string);
    let (peers, messages) = if args.teach {
        TEACH
    } else {
        (args.peers, args.messages)
    };
    let mut opts = DemoOptions {
        peers: usize::from(peers),
        messages,
        regions: usize::from(args.regions),
        wan,
        orders: args.orders.clone(),
        key_file: args.key.clone(),
        ..DemoOptions::new(exe, PathBuf::new())
    };
    // Check the arguments before creating any directory.
    opts.validate()?;
    opts.data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => demo::new_demo_dir(&PathBuf::from("mpcomm-demo"))?,
    };

    let intro = format!(
        "mpcomm demo: {} peers × {} messages in {} region(s); orders {}\n\
         network: {}\n\
         everything goes to {}",
        opts.peers,
        opts.messages,
        opts.regions,
        orders_list(&opts.orders),
        opts.wan
            .as_deref()
            .map(|w| format!("emulated WAN {w}"))
            .unwrap_or_else(|| "loopback, no WAN emulation".into()),
        opts.data_dir.display()
    );
    if args.json {
        eprintln!("{intro}");
    } else {
        println!("{intro}\n");
    }
    for w in net.iter().flat_map(super::wan::warnings) {
        eprintln!("{w}");
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(async {
        let shutdown = super::shutdown_signal().context("cannot install signal handlers")?;
        let mut ui = Progress::new();
        let result = demo::run(&opts, &mut |ev| ui.show(ev), shutdown).await;
        ui.clear();
        result
    })?;

    if args.json {
        let runs: Vec<serde_json::Value> = outcome
            .runs
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()?;
        println!("{}", serde_json::json!({ "runs": runs }));
    } else if !outcome.runs.is_empty() {
        print!("{}", comparison(&outcome.runs, &opts));
    }
    if !outcome.killed.is_empty() {
        eprintln!(
            "note: {} did not stop when asked and had to be killed (see {}/logs/)",
            outcome.killed.join(", "),
            opts.data_dir.display()
        );
    }
    Ok(exit_code(&outcome))
}

fn exit_code(outcome: &DemoOutcome) -> ExitCode {
    if outcome.interrupted {
        eprintln!("mpcomm demo: interrupted; every process it started has been stopped");
        ExitCode::from(130)
    } else if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn orders_list(orders: &[OrderKind]) -> String {
    orders
        .iter()
        .map(|o| o.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The progress display: on a terminal, one line on stderr, redrawn and
/// reused through the phases; otherwise (a file, a pipe, a CI log) one
/// plain line per phase, so that a log shows the phases without a flood of
/// redraws.
struct Progress {
    bar: ProgressBar,
    /// Length of the sending phase of the current run, in milliseconds.
    expected_ms: u64,
    /// Reports have started arriving: the bar counts logs, not time.
    collecting: bool,
    /// stderr is not a terminal: print lines instead of drawing.
    plain: bool,
    /// The current run, for the plain lines ("run 1/2 none").
    run: String,
}

impl Progress {
    fn new() -> Progress {
        let plain = !std::io::stderr().is_terminal();
        let bar = if plain {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        bar.set_style(style("{spinner} starting processes {pos}/{len} {msg}"));
        if !plain {
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        Progress {
            bar,
            expected_ms: 0,
            collecting: false,
            plain,
            run: String::new(),
        }
    }

    /// The plain line for `ev`, if it starts a phase worth a line.
    fn plain_line(&mut self, ev: &DemoEvent) -> Option<String> {
        match ev {
            DemoEvent::Up { up, total, .. } if up == total => {
                Some(format!("all {total} processes are up"))
            }
            DemoEvent::RunStarting {
                order,
                index,
                runs,
                expected,
            } => {
                self.run = format!("run {}/{runs} {order}", index + 1);
                Some(format!(
                    "{}: sending (about {:.0} s)",
                    self.run,
                    expected.as_secs_f64()
                ))
            }
            DemoEvent::Server(ServerEvent::Waiting {
                registered,
                expected,
            }) => Some(format!(
                "waiting for peers: {registered} of {expected} answer"
            )),
            DemoEvent::Server(ServerEvent::Ending { cause }) => {
                Some(format!("{}: ending: {cause}", self.run))
            }
            DemoEvent::Server(ServerEvent::Checking) => {
                Some(format!("{}: checking the logs", self.run))
            }
            DemoEvent::RunFinished { passed, .. } => Some(format!(
                "{}: {}",
                self.run,
                if *passed { "PASS" } else { "FAIL" }
            )),
            DemoEvent::Stopping => Some("stopping the processes".to_string()),
            _ => None,
        }
    }

    fn show(&mut self, ev: DemoEvent) {
        if self.plain {
            if let Some(line) = self.plain_line(&ev) {
                eprintln!("{line}");
            }
            return;
        }
        match ev {
            DemoEvent::Spawning { name, total } => {
                self.bar.set_length(total as u64);
                self.bar.set_message(format!("({name})"));
            }
            DemoEvent::Up { name, up, total } => {
                self.bar.set_length(total as u64);
                self.bar.set_position(up as u64);
                self.bar.set_message(format!("({name} is up)"));
            }
            DemoEvent::RunStarting {
                order,
                index,
                runs,
                expected,
            } => {
                self.expected_ms = expected.as_millis().max(1) as u64;
                self.collecting = false;
                self.bar.reset();
                self.bar.set_style(style(
                    "{spinner} run {prefix} [{bar:24}] {elapsed:>3} {msg}",
                ));
                self.bar
                    .set_prefix(format!("{}/{runs} {:<5}", index + 1, order.to_string()));
                self.bar.set_length(self.expected_ms);
                self.bar.set_position(0);
                self.bar
                    .set_message(format!("sending (about {:.0} s)", expected.as_secs_f64()));
            }
            DemoEvent::Tick { elapsed } if !self.collecting => {
                let ms = elapsed.as_millis() as u64;
                self.bar.set_position(ms.min(self.expected_ms));
                if ms >= self.expected_ms {
                    self.bar.set_message("delivering the last messages");
                }
            }
            DemoEvent::Tick { .. } => {}
            DemoEvent::Server(ServerEvent::Reported {
                received, total, ..
            }) => {
                self.collecting = true;
                self.bar.set_length(total as u64);
                self.bar.set_position(received as u64);
                self.bar
                    .set_message(format!("collecting logs {received}/{total}"));
            }
            DemoEvent::Server(ServerEvent::Checking) => {
                self.bar.set_message("checking the logs");
            }
            DemoEvent::Server(_) => {}
            DemoEvent::RunFinished { order, passed } => {
                self.bar.println(format!(
                    "  run {:<5} done in {:.1} s: {}",
                    order.to_string(),
                    self.bar.elapsed().as_secs_f64(),
                    if passed { "PASS" } else { "FAIL" }
                ));
            }
            DemoEvent::Stopping => {
                self.bar.reset();
                self.bar.set_style(style("{spinner} {msg}"));
                self.bar.set_message("stopping the processes");
            }
        }
    }

    fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// Column width of one order in the table.
const COL: usize = 16;
/// Width of the row labels.
const LABEL: usize = 18;

/// The side-by-side table, the run directories, and the explanation.
fn comparison(runs: &[RunOutcome], opts: &DemoOptions) -> String {
    let mut s = String::new();
    let cell = |r: &RunOutcome, f: &dyn Fn(&mpcomm_check::Findings) -> String| {
        r.findings.as_ref().map(f).unwrap_or_else(|| "-".into())
    };
    let ok = |b: bool| if b { "ok" } else { "VIOLATED" }.to_string();
    let ms = |us: u64| format!("{:.1} ms", us as f64 / 1e3);
    type Row<'a> = (&'a str, Box<dyn Fn(&RunOutcome) -> String + 'a>);
    let rows: Vec<Row> = vec![
        (
            "unordered rounds",
            Box::new(|r| cell(r, &|f| format!("{} of {}", f.unordered_rounds, f.rounds))),
        ),
        ("total order", Box::new(|r| cell(r, &|f| ok(f.total_order)))),
        ("agreement", Box::new(|r| cell(r, &|f| ok(f.agreement)))),
        ("integrity", Box::new(|r| cell(r, &|f| ok(f.integrity)))),
        ("FIFO", Box::new(|r| cell(r, &|f| ok(f.fifo)))),
        (
            "latency p50",
            Box::new(|r| {
                cell(r, &|f| {
                    f.latency_us
                        .as_ref()
                        .map(|l| ms(l.p50))
                        .unwrap_or_else(|| "-".into())
                })
            }),
        ),
        (
            "latency p99",
            Box::new(|r| {
                cell(r, &|f| {
                    f.latency_us
                        .as_ref()
                        .map(|l| ms(l.p99))
                        .unwrap_or_else(|| "-".into())
                })
            }),
        ),
        (
            "delivered",
            Box::new(|r| cell(r, &|f| format!("{} of {}", f.delivered, f.expected))),
        ),
        (
            "verdict",
            Box::new(|r| if r.passed { "PASS" } else { "FAIL" }.to_string()),
        ),
    ];

    let _ = write!(s, "{:LABEL$}", "order");
    for r in runs {
        let _ = write!(s, "{:COL$}", r.params.order.to_string());
    }
    s.truncate(s.trim_end().len());
    s.push('\n');
    let _ = writeln!(s, "{}", "-".repeat(LABEL + COL * runs.len()));
    for (label, value) in &rows {
        let _ = write!(s, "{label:LABEL$}");
        for r in runs {
            let _ = write!(s, "{:COL$}", value(r));
        }
        s.truncate(s.trim_end().len());
        s.push('\n');
    }

    s.push('\n');
    for r in runs {
        let order = r.params.order.to_string();
        if let Some(e) = &r.error {
            let _ = writeln!(s, "{order:<6} FAILED: {e}");
        }
        let _ = writeln!(s, "{order:<6} run directory: {}", r.run_dir.display());
        if let Some(report) = &r.report {
            let _ = writeln!(s, "{:6} report: {}", "", report.display());
        }
        if let Some(e) = &r.report_error {
            let _ = writeln!(s, "{:6} no report: {e}", "");
        }
    }
    let _ = writeln!(
        s,
        "{:6} process logs: {}",
        "",
        opts.data_dir.join("logs").display()
    );
    s.push('\n');
    s.push_str(EXPLANATION);
    if opts.wan.is_none() {
        s.push_str(
            "  (This demo ran without WAN emulation: on the loopback, messages\n\
             \x20  arrive almost at once and rarely out of order. Drop --wan off\n\
             \x20  to see the difference.)\n",
        );
    }
    s
}

/// What the table means, for students (fits 80 columns).
const EXPLANATION: &str = "\
What the table shows
  Every peer multicasts its messages to all peers and logs the order in
  which it delivers the messages of everyone. Round k compares the k-th
  delivery of all peers; the round is UNORDERED if they did not all deliver
  the same message there.
  none   delivers each message the moment it arrives. Messages from a peer's
         own region arrive sooner than messages from the far region, so the
         peers see different orders: unordered rounds. Jitter may even swap
         two messages of one sender (FIFO). `none` promises only that every
         message reaches every peer exactly once (integrity, agreement), so
         it still PASSes.
  total  stamps every message with a Lamport clock and holds it back until
         no message with a smaller stamp can still arrive. Then every peer
         delivers the same sequence: zero unordered rounds. The price is
         latency: a peer must hear from the far region before it delivers.
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanation_fits_80_columns() {
        for line in EXPLANATION.lines() {
            assert!(line.chars().count() <= 80, "{line:?}");
        }
    }
}
