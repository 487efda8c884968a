//! Liveness under heavy loss, the end of a run, and bounded memory.
//!
//! `suite.rs` shows that every order keeps its promise; this file shows that
//! the protocol also *finishes*, promptly and with bounded memory, when the
//! network is at its worst:
//!
//! * **the tail** — over a batch of seeds at up to 60 % loss (with
//!   duplication and reordering), the slowest run completes within 5× the
//!   median: no repair ever waits minutes;
//! * **leaving** — peers leave by the runtime's own rule
//!   (`Peer::may_leave`), which the simulator applies, so every run here
//!   covers the end of a run: nobody leaves while a live member lacks its
//!   records, and the end converges within a few round trips (never a
//!   timeout's worth) once everyone has completed;
//! * **the hold-back queue** — what a receiver holds undelivered is bounded
//!   by the flow-control window, whatever the network does.
//!
//! Every failure prints its seed and the `mpcomm sim` command that replays it.

use std::time::Duration;

use mpcomm_core::OrderKind;
use mpcomm_sim::{NetProfile, SimConfig, SimOutcome, run};

fn lossy(loss: f64) -> NetProfile {
    NetProfile {
        loss,
        duplicate: 0.2,
        reorder: 0.3,
        ..NetProfile::default()
    }
}

fn verdict(cfg: &SimConfig, out: &SimOutcome) -> Option<String> {
    let f = &out.findings;
    let fine = out.completed
        && f.passed
        && f.agreement
        && f.integrity
        && f.delivered == f.expected
        && (cfg.order == OrderKind::None || f.fifo)
        && (cfg.order != OrderKind::Total || f.total_order);
    (!fine).then(|| {
        format!(
            "seed {}: completed={} stuck={:?} failures={:?} passed={} delivered {} of {}\n    replay: {}",
            cfg.seed,
            out.completed,
            out.stuck,
            out.failures,
            f.passed,
            f.delivered,
            f.expected,
            cfg.replay_command()
        )
    })
}

/// Runs `seeds` at one loss level and asserts every run completes correctly
/// and the slowest is within 5× the median completion time.
fn tail_is_bounded(order: OrderKind, loss: f64, seeds: std::ops::Range<u64>) {
    let mut times = Vec::new();
    let mut failures = Vec::new();
    let mut slowest: Option<(f64, SimConfig)> = None;
    for seed in seeds {
        let cfg = SimConfig {
            peers: 4,
            messages: 50,
            order,
            seed,
            net: lossy(loss),
            ..SimConfig::default()
        };
        let out = run(&cfg);
        if let Some(why) = verdict(&cfg, &out) {
            failures.push(why);
        }
        if slowest.as_ref().is_none_or(|(t, _)| out.sim_time_ms > *t) {
            slowest = Some((out.sim_time_ms, cfg.clone()));
        }
        times.push(out.sim_time_ms);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let (max, cfg) = slowest.expect("at least one seed");
    assert!(
        max <= 5.0 * median,
        "{order} at {loss} loss: the slowest run took {:.1} s, {:.1}× the median {:.1} s\n    replay: {}",
        max / 1e3,
        max / median,
        median / 1e3,
        cfg.replay_command()
    );
}

#[test]
fn the_tail_is_bounded_at_20_percent_loss() {
    for order in [OrderKind::None, OrderKind::Fifo, OrderKind::Total] {
        tail_is_bounded(order, 0.2, 0..40);
    }
}

#[test]
fn the_tail_is_bounded_at_40_percent_loss() {
    for order in [OrderKind::None, OrderKind::Fifo, OrderKind::Total] {
        tail_is_bounded(order, 0.4, 100..140);
    }
}

#[test]
fn the_tail_is_bounded_at_60_percent_loss() {
    for order in [OrderKind::None, OrderKind::Fifo, OrderKind::Total] {
        tail_is_bounded(order, 0.6, 200..240);
    }
}

/// The issue's own seed: before the repair cap and NAKs it took 519 s of
/// simulated time (the median at this profile is ~25 s, now ~11 s), one
/// peer going 510 s without a delivery while asking the whole time.
#[test]
fn seed_167_at_60_percent_loss_is_no_longer_slow() {
    let cfg = SimConfig {
        peers: 4,
        messages: 100,
        order: OrderKind::Total,
        seed: 167,
        net: lossy(0.6),
        ..SimConfig::default()
    };
    let out = run(&cfg);
    assert!(verdict(&cfg, &out).is_none(), "{:?}", verdict(&cfg, &out));
    assert!(
        out.sim_time_ms < 60_000.0,
        "took {:.1} s\n    replay: {}",
        out.sim_time_ms / 1e3,
        cfg.replay_command()
    );
}

/// Peers leave by the runtime's rule. At 30 % loss every run still
/// completes — before, a finished peer could leave while another still
/// lacked its records (7 of 300 `total` runs, 16 of 500 `fifo`/`none`
/// never completed) — and the last peer leaves within a few round trips of
/// the last completion, never after a peer timeout (60 s here).
#[test]
fn nobody_leaves_while_others_need_them() {
    let mut failures = Vec::new();
    for (i, order) in [OrderKind::Total, OrderKind::Fifo, OrderKind::None]
        .into_iter()
        .enumerate()
    {
        for seed in 0..80 {
            let cfg = SimConfig {
                peers: 4,
                messages: 30,
                order,
                seed: 5000 + 100 * i as u64 + seed,
                net: NetProfile {
                    loss: 0.3,
                    ..NetProfile::default()
                },
                ..SimConfig::default()
            };
            let out = run(&cfg);
            if let Some(why) = verdict(&cfg, &out) {
                failures.push(why);
            }
            let end_gap = out.end_time_ms - out.sim_time_ms;
            if end_gap > 5_000.0 {
                failures.push(format!(
                    "seed {}: the last peer left {:.1} s after the last completion\n    replay: {}",
                    cfg.seed,
                    end_gap / 1e3,
                    cfg.replay_command()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The last acknowledgement: at 5 % loss, a lost final ACK used to keep
/// the others waiting for the whole linger (178 of 500 runs ended only at
/// the 5 s timeout). Now the end converges within a few round trips: a
/// member that knows we completed says so, and we leave at once.
#[test]
fn the_end_converges_within_a_few_round_trips() {
    let mut gaps = Vec::new();
    for seed in 0..200 {
        let cfg = SimConfig {
            peers: 4,
            messages: 20,
            order: OrderKind::Total,
            seed: 9000 + seed,
            net: NetProfile {
                loss: 0.05,
                ..NetProfile::default()
            },
            ..SimConfig::default()
        };
        let out = run(&cfg);
        assert!(verdict(&cfg, &out).is_none(), "{:?}", verdict(&cfg, &out));
        gaps.push((out.end_time_ms - out.sim_time_ms, cfg));
    }
    gaps.sort_by(|a, b| a.0.total_cmp(&b.0));
    let median = gaps[gaps.len() / 2].0;
    let (worst, cfg) = &gaps[gaps.len() - 1];
    // The inter-region round trip is ~80 ms: the median end takes a few of
    // them, and even the worst stays well under the old 5 s linger.
    assert!(
        median < 500.0,
        "median end {median:.0} ms after the last completion"
    );
    assert!(
        *worst < 2_500.0,
        "the end took {worst:.0} ms\n    replay: {}",
        cfg.replay_command()
    );
}

/// Flow control counts deliveries, not just acknowledgements: a receiver
/// holds back at most one window per sender, even while its deliveries
/// stall (before, a window of 4 let `max_held` reach 973).
#[test]
fn the_hold_back_queue_is_bounded_by_the_window() {
    let window = 4;
    for order in [OrderKind::Total, OrderKind::Fifo, OrderKind::None] {
        for seed in 0..40 {
            let cfg = SimConfig {
                peers: 5,
                messages: 60,
                order,
                seed: 700 + seed,
                window,
                min_interval: Duration::from_millis(1),
                max_interval: Duration::from_millis(3),
                net: NetProfile {
                    loss: 0.2,
                    skew: 2.0,
                    ..NetProfile::default()
                },
                ..SimConfig::default()
            };
            let out = run(&cfg);
            assert!(verdict(&cfg, &out).is_none(), "{:?}", verdict(&cfg, &out));
            let bound = (cfg.peers * window) as u64;
            for (peer, stats) in out.peer_stats.iter().enumerate() {
                assert!(
                    stats.max_held <= bound,
                    "{order}: peer {peer} held {} records back (bound {bound})\n    replay: {}",
                    stats.max_held,
                    cfg.replay_command()
                );
            }
        }
    }
}
