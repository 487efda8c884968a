//! The simulation suite: thousands of seeded runs of the real protocol over
//! faulty simulated networks, each checked by the checker.
//!
//! Every failure prints its seed and the `mpcomm sim` command that replays it
//! exactly.

use std::time::Duration;

use mpcomm_check::workload::Workload;
use mpcomm_core::OrderKind;
use mpcomm_sim::{Delay, NetProfile, Progress, SimConfig, SimOutcome, run, run_with_progress};

const GROUP_SIZES: [usize; 5] = [2, 3, 4, 6, 8];

/// The fault profiles the suite sweeps. Only fields that `mpcomm sim` can set
/// from its command line are changed, so every replay command is exact.
fn profile(i: usize) -> (usize, NetProfile) {
    let base = NetProfile::default();
    match i % 6 {
        // Two regions, clean.
        0 => (2, base),
        // Two regions with skewed delays and light loss.
        1 => (
            2,
            NetProfile {
                skew: 1.0,
                loss: 0.01,
                ..base
            },
        ),
        // Heavy loss, duplication and reordering.
        2 => (
            2,
            NetProfile {
                loss: 0.2,
                duplicate: 0.05,
                reorder: 0.05,
                ..base
            },
        ),
        // Moderate loss everywhere, three regions.
        3 => (
            3,
            NetProfile {
                loss: 0.05,
                duplicate: 0.05,
                ..base
            },
        ),
        // One region, delays as jittery as they are long: constant reordering.
        4 => (
            1,
            NetProfile {
                intra: Delay::new(Duration::from_millis(5), Duration::from_millis(5)),
                reorder: 0.1,
                duplicate: 0.05,
                loss: 0.1,
                ..base
            },
        ),
        // Two regions, skewed both ways, loss, duplication and reordering.
        _ => (
            2,
            NetProfile {
                skew: 2.0,
                loss: 0.1,
                duplicate: 0.05,
                reorder: 0.05,
                ..base
            },
        ),
    }
}

/// Case `i` of the suite: group size, message count, profile and workload
/// all vary with `i`; message counts are mostly modest, with a share of
/// 200-message runs.
fn case(i: usize, order: OrderKind) -> SimConfig {
    let peers = GROUP_SIZES[i % GROUP_SIZES.len()];
    let (regions, net) = profile(i / GROUP_SIZES.len());
    let messages = [10, 25, 50, 5, 100, 200, 1, 40][(i / 7) % 8];
    SimConfig {
        peers,
        messages,
        order,
        workload: Workload::ALL[(i / 3) % Workload::ALL.len()],
        seed: 1000 + i as u64,
        regions,
        net,
        ..SimConfig::default()
    }
}

fn describe_failure(cfg: &SimConfig, out: &SimOutcome) -> String {
    let f = &out.findings;
    format!(
        "seed {} failed: completed={} stuck={:?} failures={:?} total_order={} agreement={} integrity={} fifo={} \
         causal={:?} states_agree={:?} counterexamples={:?}\n    replay: {}",
        cfg.seed,
        out.completed,
        out.stuck,
        out.failures,
        f.total_order,
        f.agreement,
        f.integrity,
        f.fifo,
        f.causal,
        f.states_agree,
        f.counterexamples,
        cfg.replay_command()
    )
}

/// Runs cases `range` and asserts every property the order promises.
fn sweep(range: std::ops::Range<usize>, order: OrderKind) {
    let mut failures = Vec::new();
    let runs = range.len();
    for i in range {
        let cfg = case(i, order);
        let out = run(&cfg);
        let f = &out.findings;
        let fine = out.completed
            && f.passed
            && f.agreement
            && f.integrity
            && (order == OrderKind::None || f.fifo)
            && (!matches!(order, OrderKind::Total | OrderKind::Sequencer)
                || (f.total_order && f.unordered_rounds == 0))
            // The simulator's logs always say what senders had delivered,
            // so the causal verdict is never unknown.
            && f.causal.is_some()
            && (order == OrderKind::None
                || order == OrderKind::Fifo
                || f.causal == Some(true))
            && (!matches!(order, OrderKind::Total | OrderKind::Sequencer)
                || f.states_agree != Some(false))
            && f.states_agree.is_some() == cfg.workload.has_state()
            && f.delivered == f.expected;
        if !fine {
            failures.push(describe_failure(&cfg, &out));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// 2,000 `total` runs in eight parts, so the test harness spreads them over
// the machine's cores.
#[test]
fn total_order_holds_part_1() {
    sweep(0..250, OrderKind::Total);
}
#[test]
fn total_order_holds_part_2() {
    sweep(250..500, OrderKind::Total);
}
#[test]
fn total_order_holds_part_3() {
    sweep(500..750, OrderKind::Total);
}
#[test]
fn total_order_holds_part_4() {
    sweep(750..1000, OrderKind::Total);
}
#[test]
fn total_order_holds_part_5() {
    sweep(1000..1250, OrderKind::Total);
}
#[test]
fn total_order_holds_part_6() {
    sweep(1250..1500, OrderKind::Total);
}
#[test]
fn total_order_holds_part_7() {
    sweep(1500..1750, OrderKind::Total);
}
#[test]
fn total_order_holds_part_8() {
    sweep(1750..2000, OrderKind::Total);
}

/// The weaker orders keep their own promises under the same faults.
#[test]
fn fifo_and_none_keep_their_promises() {
    sweep(0..150, OrderKind::Fifo);
    sweep(150..300, OrderKind::None);
}

// 2,000 `causal` runs and 2,000 `sequencer` runs, four parts each. Causal
// order holds in every one; `sequencer` also keeps total order, and its
// replicas' states agree.
#[test]
fn causal_order_holds_part_1() {
    sweep(0..500, OrderKind::Causal);
}
#[test]
fn causal_order_holds_part_2() {
    sweep(500..1000, OrderKind::Causal);
}
#[test]
fn causal_order_holds_part_3() {
    sweep(1000..1500, OrderKind::Causal);
}
#[test]
fn causal_order_holds_part_4() {
    sweep(1500..2000, OrderKind::Causal);
}
#[test]
fn sequencer_order_holds_part_1() {
    sweep(0..500, OrderKind::Sequencer);
}
#[test]
fn sequencer_order_holds_part_2() {
    sweep(500..1000, OrderKind::Sequencer);
}
#[test]
fn sequencer_order_holds_part_3() {
    sweep(1000..1500, OrderKind::Sequencer);
}
#[test]
fn sequencer_order_holds_part_4() {
    sweep(1500..2000, OrderKind::Sequencer);
}

/// A batch of two-region runs of one order and workload: four peers, 20
/// messages each, the far region's datagrams half as slow again.
fn batch(order: OrderKind, workload: Workload, seeds: std::ops::Range<u64>) -> Vec<SimOutcome> {
    seeds
        .map(|seed| {
            let cfg = SimConfig {
                peers: 4,
                messages: 20,
                order,
                workload,
                seed,
                regions: 2,
                net: NetProfile {
                    skew: 0.5,
                    ..NetProfile::default()
                },
                ..SimConfig::default()
            };
            let out = run(&cfg);
            assert!(
                out.completed && out.findings.passed,
                "{}",
                describe_failure(&cfg, &out)
            );
            out
        })
        .collect()
}

/// The conversation: without causal order, some member shows an answer
/// before its question in most runs; with it, never.
#[test]
fn answers_come_before_questions_without_causal_order() {
    const SEEDS: u64 = 60;
    for order in OrderKind::ALL {
        let runs = batch(order, Workload::Chat, 0..SEEDS);
        let early = runs
            .iter()
            .filter(|o| o.findings.answers_before_questions.is_some_and(|n| n > 0))
            .count();
        match order {
            OrderKind::None | OrderKind::Fifo => assert!(
                early as u64 * 2 > SEEDS,
                "{order}: answers before questions in only {early} of {SEEDS} runs"
            ),
            _ => assert_eq!(early, 0, "{order}"),
        }
    }
}

/// The bank: without total order the replicas' balances diverge in most
/// runs — causal order included; with it, never.
#[test]
fn balances_diverge_without_total_order() {
    const SEEDS: u64 = 60;
    for order in OrderKind::ALL {
        let runs = batch(order, Workload::Bank, 100..100 + SEEDS);
        let diverged = runs
            .iter()
            .filter(|o| o.findings.states_agree == Some(false))
            .count();
        match order {
            OrderKind::Total | OrderKind::Sequencer => assert_eq!(diverged, 0, "{order}"),
            _ => assert!(
                diverged as u64 * 2 > SEEDS,
                "{order}: balances diverged in only {diverged} of {SEEDS} runs"
            ),
        }
    }
}

/// The original's problem, reproduced: over two regions with skewed delays,
/// arrival order differs between peers in most runs, and the checker says so.
#[test]
fn none_shows_disorder_across_two_regions() {
    let mut disordered = 0;
    for seed in 0..100 {
        let cfg = SimConfig {
            peers: 4,
            messages: 20,
            order: OrderKind::None,
            seed,
            regions: 2,
            net: NetProfile {
                skew: 0.5,
                ..NetProfile::default()
            },
            ..SimConfig::default()
        };
        let out = run(&cfg);
        assert!(out.completed, "{}", describe_failure(&cfg, &out));
        // Reliable links: nothing lost or duplicated even without order.
        assert!(
            out.findings.integrity && out.findings.agreement,
            "{}",
            describe_failure(&cfg, &out)
        );
        if out.findings.unordered_rounds > 0 {
            assert!(
                !out.findings.total_order,
                "disorder must show as a total-order violation"
            );
            assert!(out.findings.counterexamples.total_order.is_some());
            disordered += 1;
        }
    }
    assert!(
        disordered >= 80,
        "only {disordered} of 100 runs showed disorder"
    );
}

/// The same seed gives the identical run; another seed does not.
#[test]
fn same_seed_same_trace() {
    let cfg = case(7, OrderKind::Total); // a lossy profile
    let a = run(&cfg);
    let b = run(&cfg);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.events, b.events);
    assert_eq!(a.logs, b.logs);
    let c = run(&SimConfig {
        seed: cfg.seed + 1,
        ..cfg.clone()
    });
    assert_ne!(a.trace_hash, c.trace_hash);
}

/// Watching a run's progress does not change it, and progress only grows.
#[test]
fn progress_is_reported_and_changes_nothing() {
    let cfg = SimConfig {
        peers: 8,
        messages: 200,
        ..case(7, OrderKind::Total)
    };
    let mut seen: Vec<Progress> = Vec::new();
    let watched = run_with_progress(&cfg, &mut |p| seen.push(p));
    let plain = run(&cfg);
    assert_eq!(watched.trace_hash, plain.trace_hash);
    assert!(
        !seen.is_empty(),
        "a run of {} events reported nothing",
        plain.events
    );
    assert!(
        seen.windows(2)
            .all(|w| w[0].delivered <= w[1].delivered && w[0].sim_time <= w[1].sim_time)
    );
    assert!(
        seen.iter()
            .all(|p| p.expected == 8 * 8 * 200 && p.delivered <= p.expected)
    );
}

/// A failure prints a command that names every setting that differs from
/// the defaults, so the run can be replayed.
#[test]
fn replay_command_names_the_settings() {
    let cfg = case(12, OrderKind::Total);
    let cmd = cfg.replay_command();
    for needle in [
        format!("--seed {}", cfg.seed),
        format!("--peers {}", cfg.peers),
        format!("--messages {}", cfg.messages),
        format!("--loss {}", cfg.net.loss),
        format!("--regions {}", cfg.regions),
    ] {
        assert!(cmd.contains(&needle), "{cmd} lacks {needle}");
    }
}

/// `shiviz.log` obeys ShiViz's rules on a real traced run: every host's own
/// entry counts its events 1, 2, 3, …; no entry names an event that is not
/// in the log; and every arrival's clock is at least its send's.
#[test]
fn shiviz_clocks_follow_the_rules_shiviz_checks() {
    let cfg = SimConfig {
        peers: 4,
        messages: 10,
        order: OrderKind::Total,
        seed: 5,
        trace: Some(mpcomm_core::TraceLimits::default()),
        ..SimConfig::default()
    };
    let out = run(&cfg);
    let t = mpcomm_sim::rundir::merged_trace(&cfg, &out).expect("traced");
    let log = mpcomm_sim::shiviz::render(&t.lines, 4, &mpcomm_sim::rundir::names(&cfg));
    let mut lines = log.lines();
    assert_eq!(lines.next(), Some(mpcomm_sim::shiviz::REGEX));
    assert_eq!(lines.next(), Some(""));
    let mut count = [0u64; 4];
    let mut events: Vec<(usize, Vec<u64>, String)> = Vec::new();
    for line in lines {
        let (host, rest) = line.split_once(' ').expect("host");
        let end = rest.find('}').expect("clock") + 1;
        let clock: std::collections::BTreeMap<String, u64> =
            serde_json::from_str(&rest[..end]).expect("the clock is JSON");
        let h: usize = host.trim_start_matches("peer-").parse().expect("host name");
        count[h] += 1;
        assert_eq!(clock.get(host), Some(&count[h]), "{line}");
        let vc: Vec<u64> = (0..4)
            .map(|k| clock.get(&format!("peer-{k}")).copied().unwrap_or(0))
            .collect();
        events.push((h, vc, rest[end + 1..].to_string()));
    }
    assert_eq!(events.len(), t.lines.len());
    for (h, vc, _) in &events {
        for (k, v) in vc.iter().enumerate() {
            assert!(*v <= count[k], "host {h} names event {v} of host {k}");
        }
    }
    // Each arrival happens after its send.
    for (i, l) in t.lines.iter().enumerate() {
        if l.event != "arrive" {
            continue;
        }
        let s = t
            .lines
            .iter()
            .position(|s| {
                s.event == "send" && (s.sender, s.seq, &s.kind) == (l.sender, l.seq, &l.kind)
            })
            .expect("its send");
        assert!(events[s].1.iter().zip(&events[i].1).all(|(a, b)| a <= b));
    }
}
